"""HTTP views for orchestrators and Prometheus: liveness, readiness, metrics.

Two kinds of readiness, because they answer different questions:

- `/readyz` (the Kubernetes readinessProbe, the Service's endpoints): can this worker serve HTTP?
  Every read comes from Redis and every write becomes an event on soc.ticket-events, so a worker
  serves correctly while Kafka is reachable and Redis answers, whether or not it holds partitions
  at this moment. It stays 200 through a consumer-group rebalance and table recovery: otherwise
  every join, leave or rollout step would take every pod out of the Service at once.
- `/readyz/processing`: does this worker hold partitions and has it recovered its tables? 503
  during a rebalance or recovery, and on a worker with nothing assigned (more workers than
  partitions). Tests, `soc dev` and the benchmark wait on this one before they send data.

The same facts are gauges on /metrics: `soc_worker_ready` (the last /readyz verdict, refreshed on
each /readyz and each /metrics scrape), `soc_worker_assigned` and `soc_tables_recovered` (read at
scrape time), so alerts can tell "up but cut off" from "rebalancing".
"""
from __future__ import annotations

import asyncio

from aiohttp.web import Response
from faust import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import GaugeMetricFamily

from streams.http.api import HttpView


async def _broker_reachable(servers: list[str], timeout: float = 1.0) -> bool:
    for server in servers:
        host, _, port = server.rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout)
        except (OSError, asyncio.TimeoutError, ValueError):
            continue
        writer.close()
        return True
    return False


def assigned(app) -> bool:
    """This worker holds partitions and no rebalance is under way."""
    try:
        return bool(app.consumer.assignment()) and not app.rebalancing
    except Exception:  # the consumer is not built yet (start-up)
        return False


def tables_recovered(app) -> bool:
    """Table recovery (changelog replay) finished for the current assignment."""
    try:
        return app.tables.recovery.completed.is_set() and not app.in_recovery
    except Exception:
        return False


async def serving_checks(pipeline) -> dict[str, bool]:
    """What /readyz decides on, and records for soc_worker_ready."""
    checks = {
        "broker": await _broker_reachable(pipeline.settings.bootstrap_servers),
        "redis": await pipeline.store.ping(),
        "healthy": pipeline.health.ok,
    }
    _readiness(pipeline).serving = all(checks.values())
    return checks


class ReadinessCollector:
    """soc_worker_ready, soc_worker_assigned, soc_tables_recovered for one pipeline's registry."""

    def __init__(self, pipeline):
        self.pipeline = pipeline
        self.serving = False  # until the first check

    def describe(self):
        return []  # no samples at registration time: the app is not running yet

    def collect(self):
        app = self.pipeline.app
        for name, doc, value in (
            ("soc_worker_ready", "1 while /readyz answers 200 (Kafka reachable, Redis answering, no agent crashed)",
             self.serving),
            ("soc_worker_assigned", "1 while this worker holds partitions and no rebalance is under way",
             assigned(app)),
            ("soc_tables_recovered", "1 once table recovery finished for the current assignment",
             tables_recovered(app)),
        ):
            family = GaugeMetricFamily(name, doc)
            family.add_metric([], 1.0 if value else 0.0)
            yield family


def _readiness(pipeline) -> ReadinessCollector:
    collector = getattr(pipeline, "_soc_readiness", None)
    if collector is None:
        collector = ReadinessCollector(pipeline)
        pipeline.registry.register(collector)
        object.__setattr__(pipeline, "_soc_readiness", collector)
    return collector


class Healthz(HttpView):
    """Fails once an agent crashed (the process exits moments later, so the orchestrator restarts it)."""

    def __init_subclass__(cls, **kw):
        # register() (streams/http/__init__.py) makes one subclass per pipeline with `http` set:
        # the readiness gauges join that pipeline's registry then, before the first scrape.
        super().__init_subclass__(**kw)
        http = cls.__dict__.get("http")
        if http is not None:
            _readiness(http.pipeline)

    async def get(self, request: web.Request) -> web.Response:
        health = self.http.pipeline.health
        if not health.ok:
            return self.json({"status": "failed", "error": health.failure}, status=503)
        return self.json({"status": "ok"})


class Readyz(HttpView):
    """Can serve HTTP: 200 through rebalances and recovery; assignment is reported, not required."""

    async def get(self, request: web.Request) -> web.Response:
        p = self.http.pipeline
        checks = await serving_checks(p)
        ready = all(checks.values())
        return self.json({"ready": ready, **checks,
                          "assigned": assigned(p.app), "tables_recovered": tables_recovered(p.app)},
                         status=200 if ready else 503)


class ReadyzProcessing(HttpView):
    """Processing: serving, plus partitions held and tables recovered."""

    async def get(self, request: web.Request) -> web.Response:
        p = self.http.pipeline
        checks = {**await serving_checks(p), "assigned": assigned(p.app), "tables_recovered": tables_recovered(p.app)}
        ready = all(checks.values())
        return self.json({"ready": ready, **checks}, status=200 if ready else 503)


class Metrics(web.View):
    async def get(self, request: web.Request) -> web.Response:
        await serving_checks(self.http.pipeline)  # soc_worker_ready as of this scrape
        return Response(body=generate_latest(self.http.pipeline.registry),
                        headers={"Content-Type": CONTENT_TYPE_LATEST})


ROUTES = [
    ("/healthz", "healthz", Healthz),
    ("/readyz", "readyz", Readyz),
    ("/readyz/processing", "readyz_processing", ReadyzProcessing),
]
# With Faust's sensors on, Faust serves /metrics itself (streams/topology/settings.py); soc_worker_ready
# is then refreshed by /readyz calls only (the readinessProbe makes one every 5 s).
METRICS_ROUTE = ("/metrics", "metrics", Metrics)
