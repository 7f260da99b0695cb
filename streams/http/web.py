"""HTTP views for orchestrators and Prometheus: liveness, readiness, metrics."""
from __future__ import annotations

import asyncio

from aiohttp.web import Response
from faust import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.http.api import JsonView


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


class Healthz(JsonView):
    """Fails once an agent crashed (the process exits moments later, so the orchestrator restarts it)."""

    async def get(self, request: web.Request) -> web.Response:
        health = self.http.pipeline.health
        if not health.ok:
            return self.json({"status": "failed", "error": health.failure}, status=503)
        return self.json({"status": "ok"})


class Readyz(JsonView):
    async def get(self, request: web.Request) -> web.Response:
        p = self.http.pipeline
        app = p.app
        checks = {
            "broker": await _broker_reachable(p.settings.bootstrap_servers),
            "redis": await p.store.ping(),
            # Not ready until this worker owns partitions and has recovered its tables: before that,
            # nothing it accepts is processed.
            "assigned": bool(app.consumer.assignment()) and not app.rebalancing,
            "tables_recovered": app.tables.recovery.completed.is_set() and not app.in_recovery,
            "healthy": p.health.ok,
        }
        ready = all(checks.values())
        return self.json({"ready": ready, **checks}, status=200 if ready else 503)


class Metrics(web.View):
    async def get(self, request: web.Request) -> web.Response:
        return Response(body=generate_latest(self.http.pipeline.registry),
                        headers={"Content-Type": CONTENT_TYPE_LATEST})


ROUTES = [
    ("/healthz", "healthz", Healthz),
    ("/readyz", "readyz", Readyz),
]
# With Faust's sensors on, Faust serves /metrics itself (streams/topology/app.py).
METRICS_ROUTE = ("/metrics", "metrics", Metrics)
