"""Reads for the leadership view (/stats) and the daily duty report, beside the ticket store.

It reads the same Redis keys as streams/store.py (the listing set `<prefix>:tickets`, the ticket
hashes and the gauge facts) and writes nothing. A ticket's listing score is
`(2 if open else 1) * OPEN_WEIGHT + severity rank * SEVERITY_WEIGHT + dispatched millis`, so the
tickets dispatched in a period are eight score ranges of that one set (open or not, four
severities): no scan of every ticket.
"""
from __future__ import annotations

from datetime import datetime

import redis.asyncio as aioredis

from schemas.enums import SEVERITY_RANK
from schemas.records import Ticket
from streams.store import OPEN_WEIGHT, SEVERITY_WEIGHT, millis

CHUNK = 500


class StatsStore:
    def __init__(self, client: aioredis.Redis, prefix: str):
        self.redis = client
        self.prefix = prefix

    @classmethod
    def beside(cls, store) -> "StatsStore":
        """The stats reads of a TicketStore's Redis and prefix."""
        return cls(store.redis, store.prefix)

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    async def dispatched_ids(self, start: datetime, end: datetime) -> list[str]:
        """Tickets dispatched in [start, end) still in the listing (closed ones leave it after retention)."""
        lo, hi = millis(start), millis(end)
        async with self.redis.pipeline(transaction=False) as pipe:
            for open_part in (1, 2):
                for rank in set(SEVERITY_RANK.values()):
                    base = open_part * OPEN_WEIGHT + rank * SEVERITY_WEIGHT
                    pipe.zrangebyscore(self.key("tickets"), base + lo, f"({base + hi}")
            found = await pipe.execute()
        return list(dict.fromkeys(i.decode() for ids in found for i in ids))

    async def open_ids(self) -> list[str]:
        return [i.decode() for i in await self.redis.zrangebyscore(self.key("tickets"), 2 * OPEN_WEIGHT, "+inf")]

    async def many(self, ticket_ids: list[str]) -> list[Ticket]:
        out: list[Ticket] = []
        for at in range(0, len(ticket_ids), CHUNK):
            async with self.redis.pipeline(transaction=False) as pipe:
                for ticket_id in ticket_ids[at:at + CHUNK]:
                    pipe.hget(self.key("ticket", ticket_id), "json")
                raws = await pipe.execute()
            out += [Ticket.model_validate_json(r) for r in raws if r is not None]
        return out

    async def dispatched(self, start: datetime, end: datetime) -> list[Ticket]:
        tickets = await self.many(await self.dispatched_ids(start, end))
        return [t for t in tickets if start <= t.dispatched_at < end]

    async def gauge_facts(self) -> list[bytes]:
        return await self.redis.hvals(self.key("facts"))

    async def facts_by_id(self) -> dict[str, bytes]:
        """Every ticket's gauge facts by ticket id (tickets still in the hot sets: open, or closed
        within retention)."""
        return {ticket_id.decode(): raw for ticket_id, raw in (await self.redis.hgetall(self.key("facts"))).items()}
