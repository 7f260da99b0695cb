"""HTTP views on the worker's web server: health, readiness, metrics (the ticket API lives in streams/api.py)."""
from __future__ import annotations

import asyncio

from aiohttp.web import Response
from faust import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.app import app, registry, settings, store

async def _broker_reachable(timeout: float = 1.0) -> bool:
    for server in settings.bootstrap_servers:
        host, _, port = server.rpartition(":")
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), timeout)
        except (OSError, asyncio.TimeoutError, ValueError):
            continue
        writer.close()
        return True
    return False


@app.page("/healthz", name="healthz")
class Healthz(web.View):
    async def get(self, request: web.Request) -> web.Response:
        return self.json({"status": "ok"})


@app.page("/readyz", name="readyz")
class Readyz(web.View):
    async def get(self, request: web.Request) -> web.Response:
        checks = {
            "broker": await _broker_reachable(),
            "redis": await store.ping(),
            # Not ready until this worker owns partitions: before that, nothing it accepts is processed.
            "assigned": bool(app.consumer.assignment()) and not app.rebalancing,
        }
        ready = all(checks.values())
        return self.json({"ready": ready, **checks}, status=200 if ready else 503)


if not settings.faust_sensors:  # with them on, Faust's sensor setup serves /metrics itself
    @app.page("/metrics", name="metrics")
    class Metrics(web.View):
        async def get(self, request: web.Request) -> web.Response:
            return Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})
