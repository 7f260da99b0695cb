"""The board stream (`<prefix>:board`) as the benchmark reads it: every ticket write with its Redis
time and the newest incident id, so each event's produce -> ticket latency can be matched; and the
percentiles of those latencies."""
from __future__ import annotations

import asyncio
import statistics
from collections import deque

import orjson
import redis.asyncio as aioredis


def stream_ms(entry_id: bytes | str) -> int:
    """A Redis stream entry id's server milliseconds."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.split("-", 1)[0])


INCIDENT_KINDS = (b"incident", b"open", b"occurrence")


class BoardReader:
    """Follows `<prefix>:board` with XREAD BLOCK; keeps (redis ms, newest incident id) per ticket write."""

    def __init__(self, redis_url: str, key: str):
        self.url = redis_url
        self.key = key
        self.writes: list[tuple[int, str]] = []
        self.entries = 0
        # (ticket id, department, category) of each "open" entry
        self.opened: deque[tuple[str, str, str | None]] = deque()
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        self._stop.set()
        if self._task:
            await self._task

    async def _run(self) -> None:
        client = aioredis.from_url(self.url)
        last = "0-0"
        try:
            while True:
                stopping = self._stop.is_set()
                response = await client.xread({self.key: last}, count=5000, block=100)
                got = 0
                for _, entries in response or ():
                    for entry_id, fields in entries:
                        last = entry_id
                        got += 1
                        self.entries += 1
                        # kind: "incident" for a write an incident made (the two-hop core), "open" or
                        # "occurrence" before it; any other kind is a ticket action (the API's).
                        kind = fields.get(b"kind")
                        if kind in INCIDENT_KINDS:
                            ticket = orjson.loads(fields[b"json"])
                            ids = ticket.get("incident_ids") or []
                            if ids:
                                self.writes.append((stream_ms(entry_id), ids[-1]))
                            opened = kind == b"open" or (kind == b"incident" and ticket.get("version") == 1)
                            if opened and ticket.get("ticket_id") and ticket.get("department"):
                                self.opened.append((ticket["ticket_id"], ticket["department"], ticket.get("category")))
                if stopping and not got:
                    return
        finally:
            await client.aclose()


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(values)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered))) - 1))], 1)

    return {"n": len(ordered), "p50_ms": pick(0.50), "p95_ms": pick(0.95), "p99_ms": pick(0.99),
            "max_ms": round(ordered[-1], 1), "mean_ms": round(statistics.fmean(ordered), 1)}
