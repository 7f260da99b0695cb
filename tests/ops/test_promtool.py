"""Checks of the ops files in deploy/: Prometheus config, alert rules and their unit tests
(promtool), the Grafana dashboard's metric names, and the k8s/compose wiring.

promtool comes from Debian's prometheus package: `tools/ensure-promtool.sh` (run by
`make test`) installs it. These tests fail, not skip, when it is missing.

    python tests/ops/test_promtool.py --write-configmap   # regenerate deploy/k8s/configmap.yaml
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
PROM = DEPLOY / "prometheus"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "soc.json"
RUNBOOKS = ROOT / "docs" / "operations" / "runbooks.md"
CONFIG_DIR = DEPLOY / "config"
CONFIGMAP = DEPLOY / "k8s" / "configmap.yaml"
CONFIG_FILES = ("district.yaml", "rules.yaml", "routing.yaml", "notify.yaml", "plans.yaml", "resources.yaml", "map.geojson")

# The contract's metric names (docs/metrics.md), without histogram suffixes.
SOC_METRICS = {
    "soc_events_total",
    "soc_events_rejected_total",
    "soc_incidents_total",
    "soc_duplicates_total",
    "soc_tickets_opened_total",
    "soc_tickets_open",
    "soc_sla_breaches_total",
    "soc_escalations_total",
    "soc_department_on_time_ratio",
    "soc_pipeline_latency_seconds",
    "soc_consumer_lag",
    "soc_notifications_total",
    "soc_notification_latency_seconds",
    "soc_notifications_pending",
}
ALERTS = {
    "SocWorkerDown",
    "SocWorkersAbsent",
    "SocConsumerLagGrowing",
    "SocDeadLetterRateHigh",
    "SocSourceSilent",
    "SocSlaBreach",
    "SocPipelineLatencyHigh",
    "SocNotificationChannelFailing",
    # Readiness (streams/http/web.py gauges) and the partition watchdog.
    "SocWorkerNotReady",
    "SocWorkerNotProcessing",
    "SocPartitionStalls",
    "SocWorkerMemoryHigh",
    # Sign-in and credential guessing (handlers/sign_in.py).
    "SocSignInGuessing",
    # Broker side (kafka-exporter) and Redis (redis_exporter).
    "SocKafkaBrokerDown",
    "SocKafkaUnderReplicatedPartitions",
    "SocKafkaOfflinePartitions",
    "SocKafkaConsumerGroupLag",
    "SocRedisDown",
    "SocRedisMemoryHigh",
    "SocExporterDown",
    "SocVolumeSpaceLow",
    "SocVolumeFillingUp",
}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool not on PATH: run tools/ensure-promtool.sh (make test does)")
    return subprocess.run([exe, *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def assert_ok(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 0, (
        f"{' '.join(proc.args)} exited {proc.returncode}\n"
        f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
    )


def test_prometheus_config_is_valid():
    assert_ok(promtool("check", "config", "deploy/prometheus/prometheus.yml"))


def test_alert_rules_are_valid():
    assert_ok(promtool("check", "rules", "deploy/prometheus/alerts.yml"))


def test_alert_rule_unit_tests_pass():
    assert_ok(promtool("test", "rules", "deploy/prometheus/alerts_test.yml"))


def alert_rules() -> list[dict]:
    doc = yaml.safe_load((PROM / "alerts.yml").read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def test_every_alert_is_unit_tested_and_documented():
    rules = alert_rules()
    assert {r["alert"] for r in rules} == ALERTS
    tests = yaml.safe_load((PROM / "alerts_test.yml").read_text())
    firing = {
        t["alertname"]
        for case in tests["tests"]
        for t in case.get("alert_rule_test", [])
        if t.get("exp_alerts")
    }
    assert firing == ALERTS, f"alerts without a firing test: {ALERTS - firing}"
    runbooks = RUNBOOKS.read_text()
    anchors = {m.lower() for m in re.findall(r"^#{2,4} (Soc[A-Za-z]+)\s*$", runbooks, re.M)}
    for r in rules:
        ann, labels = r["annotations"], r["labels"]
        assert ann.get("summary") and ann.get("description"), r["alert"]
        assert labels.get("severity") in {"page", "ticket"}, r["alert"]
        url = ann.get("runbook_url", "")
        assert url == f"docs/operations/runbooks.md#{r['alert'].lower()}", (r["alert"], url)
        assert r["alert"].lower() in anchors, f"no runbook section '## {r['alert']}' in docs/operations/runbooks.md"


def test_silent_source_rule_covers_every_source():
    exprs = " ".join(r["expr"] for r in alert_rules() if r["alert"] == "SocSourceSilent")
    for source in ("traffic", "flood", "city", "construction"):
        assert f'source="{source}"' in exprs, source


def dashboard_exprs() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text())

    def walk(panels):
        for p in panels:
            yield p
            yield from walk(p.get("panels", []))

    out = [(p.get("title", ""), t["expr"]) for p in walk(dash["panels"]) for t in p.get("targets", [])]
    assert out, "dashboard has no queries"
    return out


def test_dashboard_only_uses_contract_metrics():
    unknown = set()
    for title, expr in dashboard_exprs():
        for name in re.findall(r"soc_[a-z_]+", expr):
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            if base not in SOC_METRICS:
                unknown.add((title, name))
    assert not unknown, f"dashboard queries name metrics outside the contract: {sorted(unknown)}"


def test_dashboard_shape():
    dash = json.loads(DASHBOARD.read_text())
    assert dash["uid"] and dash["schemaVersion"] >= 36
    rows = [p["title"] for p in dash["panels"] if p["type"] == "row"]
    for wanted in ("Intake by source", "Severity mix", "Tickets open by department",
                   "SLA breaches and escalations", "Dead letters", "Latency", "Consumer lag"):
        assert wanted in rows, wanted
    names = {v["name"] for v in dash["templating"]["list"]}
    assert {"source", "department"} <= names
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    for p in dash["panels"]:
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "prometheus", p["title"]
    ds = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/prometheus.yml").read_text())
    assert ds["datasources"][0]["uid"] == "prometheus"


def test_variables_come_from_series_that_exist_before_any_event():
    """A variable from label_values() of a series created on first use lists nothing on a fresh
    deployment (no ticket yet: no department to pick). Each one reads a series the worker creates at
    start-up for every value, so every department and source is there from the first scrape."""
    from prometheus_client import CollectorRegistry, generate_latest

    from schemas.config import load_config
    from streams.metrics import Metrics

    departments = tuple(load_config(DEPLOY / "config").district.departments)
    registry = CollectorRegistry()
    Metrics(registry, departments)
    text = generate_latest(registry).decode()
    dash = json.loads(DASHBOARD.read_text())
    wanted = {"department": set(departments), "source": {"traffic", "flood", "city", "construction"}}
    for var in dash["templating"]["list"]:
        metric, label = re.fullmatch(r"label_values\((\w+), (\w+)\)", var["query"]["query"]).groups()
        assert var["definition"] == var["query"]["query"], var["name"]
        present = set(re.findall(rf'^{metric}{{[^}}]*\b{label}="([^"]+)"', text, re.M))
        assert present >= wanted[var["name"]], (var["name"], metric, wanted[var["name"]] - present)


def test_dashboard_queries_parse(tmp_path):
    """Grafana variables replaced by values, each query must be valid PromQL."""
    subst = {"$__rate_interval": "1m", "$__range": "6h", "$__interval": "1m",
             "$source": ".*", "$department": ".*"}
    rules = []
    for i, (title, expr) in enumerate(dashboard_exprs()):
        for k, v in subst.items():
            expr = expr.replace(k, v)
        assert "$" not in expr, (title, expr)
        rules.append({"record": f"dashboard:query_{i}", "expr": expr})
    f = tmp_path / "dashboard_rules.yml"
    f.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    assert_ok(promtool("check", "rules", "--lint=none", str(f)))


def render_configmap() -> str:
    lines = [
        "# Generated from deploy/config by `python tests/ops/test_promtool.py --write-configmap`",
        "# (or: kubectl -n soc create configmap soc-config --from-file=deploy/config --dry-run=client -o yaml).",
        "# tests/ops checks that it matches deploy/config.",
        "apiVersion: v1",
        "kind: ConfigMap",
        "metadata:",
        "  name: soc-config",
        "  namespace: soc",
        "  labels:",
        "    app.kubernetes.io/name: soc-worker",
        "    app.kubernetes.io/part-of: soc-pipeline",
        "data:",
    ]
    for name in CONFIG_FILES:
        text = (CONFIG_DIR / name).read_text(encoding="utf-8")
        body = text[:-1].split("\n")
        literal = (text.endswith("\n") and not text.endswith("\n\n")
                   and not any(ch in text for ch in "\r\t")
                   and not any(line != line.rstrip() for line in body))
        if literal:
            # Explicit indentation when the file starts indented, else YAML would guess wrong.
            lines.append(f"  {name}: |{'2' if text[0] == ' ' else ''}")
            lines.extend(f"    {line}" if line else "" for line in body)
        else:
            lines.append(f"  {name}: {json.dumps(text, ensure_ascii=False)}")
    return "\n".join(lines) + "\n"


def test_k8s_configmap_matches_deploy_config():
    cm = yaml.safe_load(CONFIGMAP.read_text(encoding="utf-8"))
    assert cm["kind"] == "ConfigMap" and cm["metadata"]["name"] == "soc-config"
    for name in CONFIG_FILES:
        assert cm["data"].get(name) == (CONFIG_DIR / name).read_text(encoding="utf-8"), (
            f"deploy/k8s/configmap.yaml is out of date for {name}: "
            "run `python tests/ops/test_promtool.py --write-configmap`"
        )


def test_k8s_workers_wiring():
    docs = {}
    for f in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for d in yaml.safe_load_all(f.read_text(encoding="utf-8")):
            docs[d["kind"]] = d
    # The Secret is an example outside the apply set: applying deploy/k8s/ must not blank the real one.
    assert {"Deployment", "Service", "ConfigMap", "PodDisruptionBudget"} <= set(docs) and "Secret" not in docs
    docs["Secret"] = yaml.safe_load((DEPLOY / "examples" / "k8s-secret.example.yaml").read_text(encoding="utf-8"))
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["SOC_KAFKA_ACKS"] == "all"
    assert c["envFrom"][0]["secretRef"]["name"] == docs["Secret"]["metadata"]["name"]
    assert pod["volumes"][0]["configMap"]["name"] == docs["ConfigMap"]["metadata"]["name"]
    # Every token, duty phone number, notification URL and secret the config names is a key of the Secret.
    district = (CONFIG_DIR / "district.yaml").read_text(encoding="utf-8")
    wanted = set(re.findall(r"(?:token_env|phone_env|key_env):\s*(SOC_[A-Z0-9_]+)", district))
    wanted |= set(re.findall(r"(?:url_env|secret_env):\s*(SOC_[A-Z0-9_]+)",
                             (CONFIG_DIR / "notify.yaml").read_text(encoding="utf-8")))
    assert any(name.startswith("SOC_DUTY_") for name in wanted)
    assert any(name.startswith("SOC_NOTIFY_") for name in wanted)
    assert wanted <= set(docs["Secret"]["stringData"]), wanted - set(docs["Secret"]["stringData"])


def test_compose_stack():
    c = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    s = c["services"]
    kafkas = [n for n in s if re.fullmatch(r"kafka-\d+", n)]
    assert len(kafkas) == 3
    for n in kafkas:
        env = s[n]["environment"]
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == 3
        assert env["KAFKA_MIN_INSYNC_REPLICAS"] == 2
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 3
    assert "--appendonly" in s["redis"]["command"]
    workers = [n for n in s if n.startswith("worker-")]
    assert len(workers) >= 2
    for n in workers:
        assert s[n]["environment"]["SOC_KAFKA_ACKS"] == "all"
    prom = yaml.safe_load((PROM / "prometheus.yml").read_text())
    targets = {t for j in prom["scrape_configs"] if j["job_name"] == "soc-worker"
               for sc in j["static_configs"] for t in sc["targets"]}
    assert targets == {f"{n}:6066" for n in workers}
    init = s["kafka-init"]["command"][0]
    # kafka-init creates the topics of streams/topics.py, with their partitions and configs.
    made = {}
    for line in init.splitlines():
        found = re.search(r'\bmk "?([\w.$-]+)"? (\d+)((?: --config [\w.]+=\w+)*)', line)
        if found:
            names = ([f"soc.raw.{r}" for r in ("traffic", "flood", "city", "construction")]
                     if "$$s" in found.group(1) else [found.group(1)])
            configs = dict(c.split("=") for c in re.findall(r"--config ([\w.]+=\w+)", found.group(3)))
            made.update({n: (int(found.group(2)), configs) for n in names})
    from streams import topics
    wanted = {t.name: (t.partitions or 8, {k: v for k, v in t.configs.items() if (k, v) != ("cleanup.policy", "delete")})
              for t in topics.topic_specs()}
    assert made == wanted
    assert "--replication-factor 3" in init and "min.insync.replicas=2" in init


if __name__ == "__main__":
    if sys.argv[1:] == ["--write-configmap"]:
        CONFIGMAP.write_text(render_configmap(), encoding="utf-8")
        print(f"wrote {CONFIGMAP.relative_to(ROOT)}")
    else:
        sys.exit(f"usage: {sys.argv[0]} --write-configmap")
