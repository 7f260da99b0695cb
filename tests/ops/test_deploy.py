"""Static checks of deploy/: the image, compose and the manifests parse and name what the code reads.
No Docker or Kubernetes here, so these read the files; deploy/README.md marks the steps that need them."""
from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
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
