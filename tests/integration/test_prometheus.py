"""A real Prometheus scrapes a live worker; every expression of the dashboard and the alert
rules must parse and name only soc_ metrics that the worker really exports."""
from __future__ import annotations

import json
import time
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from streams.ops.devstack import Process, free_port, http_ok, spawn
from streams.settings import REPO_ROOT
from tests.support import CONFIG, poll
from tests.integration.payloads import Builder

pytestmark = pytest.mark.integration

DEPLOY = REPO_ROOT / "deploy"
SOC_METRIC = re.compile(r"\bsoc_[a-z_]+")
# Grafana's variables, as the dashboard would expand them with "All" selected.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}


def metrics_text(url: str) -> str:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        return response.read().decode()


def expressions() -> list[tuple[str, str]]:
    found = []
    for group in yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())["groups"]:
        for rule in group["rules"]:
            found.append((f"rule {rule.get('alert') or rule.get('record')}", rule["expr"]))
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "soc.json").read_text())
    panels = list(dashboard["panels"])
    while panels:
        panel = panels.pop()
        panels.extend(panel.get("panels", []))
        for target in panel.get("targets", []):
            if target.get("expr"):
                found.append((f"panel {panel.get('title')}", target["expr"]))
    return found


def expand(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return re.sub(r"\$\{?(\w+)(?::\w+)?\}?", ".*", expr)


def base_name(metric: str) -> str:
    return re.sub(r"_(bucket|sum|count)$", "", metric) if metric.startswith("soc_pipeline_latency") else metric


@pytest.fixture(scope="module")
def busy_worker(pipeline):
    """Activity that makes every series exist: a ticket worked to closure, a duplicate, a dead letter."""
    build = Builder(CONFIG, "prometheus")
    event = build.traffic()
    duplicate = dict(event, event_id=build.next_id("TR"))
    pipeline.send("soc.raw.traffic", event)
    pipeline.send("soc.raw.traffic", duplicate)
    pipeline.send("soc.raw.traffic", b"not json")
    # The two copies are parsed on different partitions: either may be the one that opens the ticket.
    refs = {event["event_id"], duplicate["event_id"]}
    ticket = poll(lambda: pipeline.tickets_where(lambda t: t.source_ref in refs), 30, "the ticket")[0]
    for action, department, body in [("accept", "traffic_police", {}),
                                     ("resolve", "traffic_police", {"resolution": "done"})]:
        assert pipeline.post(f"/api/tickets/{ticket.ticket_id}/{action}", department, body)[0] == 200
    poll(lambda: "soc_department_on_time_ratio{" in metrics_text(pipeline.worker.url), 30, "the on-time gauge")
    return pipeline


def test_live_metrics_pass_promtool_check_metrics(busy_worker):
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: make test installs it (tools/ensure-promtool.sh)"
    text = metrics_text(busy_worker.worker.url)
    result = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    problems = {line for line in (result.stdout + result.stderr).splitlines() if line.strip()}
    # Faust names this sensor itself (faust/sensors/prometheus.py); everything else must be clean.
    faust_naming = {f"faust_events_runtime_ms{suffix} metric names should not contain abbreviated units"
                    for suffix in ("", "_created")}
    assert problems <= faust_naming, "\n".join(sorted(problems - faust_naming))


@pytest.fixture(scope="module")
def prometheus(busy_worker, tmp_path_factory) -> str:
    binary = shutil.which("prometheus")
    assert binary, "prometheus missing: make test installs it (tools/ensure-promtool.sh)"
    work = Path(tmp_path_factory.mktemp("prometheus"))
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
              "scrape_configs": [{"job_name": "soc-worker",
                                  "static_configs": [{"targets": [f"127.0.0.1:{busy_worker.worker.port}"]}]}]}
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    process: Process = spawn("prometheus", [binary, f"--config.file={work / 'prometheus.yml'}",
                                            f"--storage.tsdb.path={work / 'data'}",
                                            f"--web.listen-address=127.0.0.1:{port}"], work)
    url = f"http://127.0.0.1:{port}"
    try:
        poll(lambda: process.popen.poll() is None and http_ok(url + "/-/ready"), 60, "prometheus to be ready", 0.2)
        poll(lambda: query(url, 'up{job="soc-worker"} == 1')["data"]["result"], 60, "the first scrape", 0.2)
        yield url
    finally:
        process.stop()


def query(url: str, expr: str) -> dict:
    target = f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(target, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        return json.loads(error.read())


def test_every_dashboard_and_alert_expression_parses_and_names_real_metrics(prometheus):
    checked = expressions()
    assert len(checked) >= 15
    failures = []
    for where, expr in checked:
        answer = query(prometheus, expand(expr))
        if answer.get("status") != "success":
            failures.append(f"{where}: {answer.get('error')}\n    {expr}")
    assert not failures, "\n".join(failures)

    named = {base_name(m) for _, expr in checked for m in SOC_METRIC.findall(expr)}

    def missing() -> list[str]:
        return [metric for metric in sorted(named)
                if not query(prometheus, f'count({{__name__=~"{metric}(_bucket|_total)?"}})')["data"]["result"]]

    # Some series appear only after the worker's first timer ticks (consumer lag: the watchdog's first look).
    deadline = time.monotonic() + 60
    while (absent := missing()) and time.monotonic() < deadline:
        time.sleep(1)
    assert not absent, f"named by the dashboard or rules but not scraped: {absent}"
