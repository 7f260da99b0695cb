"""HTTP views on the worker's web server: health, readiness (the ticket API lives in streams/api.py)."""
from __future__ import annotations

import asyncio

from faust import web

from streams.app import app, settings, store

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

