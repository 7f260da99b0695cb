"""The Redis projection of the tickets: written idempotently by version, read by the web API."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from functools import partial

import redis.asyncio as aioredis

from handlers import escalation, performance
from schemas.config import Config
from schemas.records import Ticket

log = logging.getLogger("soc.store")

BOARD_MAXLEN = 20_000

# Idempotent by version: a replayed or redelivered ticket write is a no-op, so a crash between
# the Redis write and the offset commit never doubles anything.
UPSERT = """
local cur = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if cur >= tonumber(ARGV[1]) then return 0 end
local old = redis.call('HGET', KEYS[1], 'inboxes')
if old then
  for d in string.gmatch(old, '[^,]+') do redis.call('ZREM', ARGV[5] .. ':inbox:' .. d, ARGV[3]) end
end
for d in string.gmatch(ARGV[6], '[^,]+') do redis.call('ZADD', ARGV[5] .. ':inbox:' .. d, ARGV[4], ARGV[3]) end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'json', ARGV[2], 'inboxes', ARGV[6])
redis.call('ZADD', KEYS[2], ARGV[4], ARGV[3])
if ARGV[9] == '' then redis.call('ZREM', KEYS[4], ARGV[3]) else redis.call('ZADD', KEYS[4], ARGV[9], ARGV[3]) end
redis.call('HSET', KEYS[5], ARGV[3], ARGV[10])
if ARGV[11] == '' then redis.call('ZREM', KEYS[6], ARGV[3]) else redis.call('ZADD', KEYS[6], ARGV[11], ARGV[3]) end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '*', 'ticket_id', ARGV[3], 'version', ARGV[1], 'kind', ARGV[8], 'json', ARGV[2])
return 1
"""

# A ticket past retention leaves the hot sets (lists, inboxes, due index, gauges); its hash stays,
# so it is still found by id.
EVICT = """
local old = redis.call('HGET', KEYS[1], 'inboxes')
if old then
  for d in string.gmatch(old, '[^,]+') do redis.call('ZREM', ARGV[2] .. ':inbox:' .. d, ARGV[1]) end
end
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
return 1
"""


class TicketStore:
    """Besides each ticket: a due index (ticket id by when its next escalation step falls due, so
    the escalation timer reads only due tickets) and each ticket's gauge facts (so the gauges read
    a few fields per ticket, not every ticket in full)."""

    def __init__(self, client: aioredis.Redis, prefix: str, next_due: Callable[[Ticket], datetime | None]):
        self.redis = client
        self.prefix = prefix
        self.next_due = next_due
        self._upsert = client.register_script(UPSERT)
        self._evict = client.register_script(EVICT)

    @classmethod
    def from_url(cls, url: str, prefix: str, config: Config) -> "TicketStore":
        return cls(aioredis.from_url(url, socket_timeout=5, socket_connect_timeout=2,
                                     health_check_interval=10), prefix, partial(escalation.next_due, config))

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    async def save(self, tickets: Iterable[tuple[Ticket, str] | tuple[Ticket, str, bytes]],
                   evicted: Iterable[str] = ()) -> list[bool]:
        """Write (ticket, kind) pairs, and drop `evicted` ticket ids from the hot sets, in one round
        trip; True where the write was new. A third item, the ticket's JSON, spares a second
        serialization when the caller has one already."""
        evicted = list(evicted)
        async with self.redis.pipeline(transaction=False) as pipe:
            for ticket_id in evicted:
                await self._evict(keys=[self.key("ticket", ticket_id), self.key("tickets"), self.key("due"),
                                        self.key("facts"), self.key("closed")],
                                  args=[ticket_id, self.prefix], client=pipe)
            for ticket, kind, *serialized in tickets:
                due = self.next_due(ticket)
                await self._upsert(
                    keys=[self.key("ticket", ticket.ticket_id), self.key("tickets"), self.key("board"),
                          self.key("due"), self.key("facts"), self.key("closed")],
                    args=[ticket.version, serialized[0] if serialized else ticket.model_dump_json(), ticket.ticket_id,
                          ticket.dispatched_at.timestamp(), self.prefix, ",".join(ticket.inboxes),
                          BOARD_MAXLEN, kind, "" if due is None else due.timestamp(), performance.gauge_facts(ticket),
                          "" if ticket.closed_at is None else ticket.closed_at.timestamp()],
                    client=pipe,
                )
            return [bool(r) for r in (await pipe.execute())[len(evicted):]]

    async def get(self, ticket_id: str) -> Ticket | None:
        raw = await self.redis.hget(self.key("ticket", ticket_id), "json")
        return None if raw is None else Ticket.model_validate_json(raw)

    async def ids(self, department: str | None) -> list[str]:
        key = self.key("inbox", department) if department else self.key("tickets")
        return [i.decode() for i in await self.redis.zrevrange(key, 0, -1)]

    async def due_ids(self, now: datetime) -> list[str]:
        """Tickets with an escalation step due by `now`."""
        return [i.decode() for i in await self.redis.zrangebyscore(self.key("due"), "-inf", now.timestamp())]

    async def closed_before(self, when: datetime) -> list[str]:
        """Tickets closed before `when` still in the hot sets (the retention sweep's work)."""
        return [i.decode() for i in await self.redis.zrangebyscore(self.key("closed"), "-inf", when.timestamp())]

    async def gauge_facts(self) -> list[bytes]:
        return await self.redis.hvals(self.key("facts"))

    async def many(self, ticket_ids: list[str]) -> list[Ticket]:
        if not ticket_ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for ticket_id in ticket_ids:
                pipe.hget(self.key("ticket", ticket_id), "json")
            raws = await pipe.execute()
        return [Ticket.model_validate_json(r) for r in raws if r is not None]

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except (aioredis.RedisError, OSError):
            return False

    async def save_with_retry(self, tickets: list[tuple], evicted: Iterable[str] = (),
                              max_delay: float = 5.0) -> list[bool]:
        """Block the partition until Redis takes the write: Kafka keeps the events meanwhile."""
        delay = 0.1
        evicted = list(evicted)
        while True:
            try:
                return await self.save(tickets, evicted)
            except (aioredis.RedisError, OSError) as exc:
                log.warning("redis write failed, retrying", extra={"retry_in_s": delay, "error": type(exc).__name__})
                await asyncio.sleep(delay)
                delay = min(delay * 2, max_delay)

    async def record_result(self, event_id: str, rejected: str) -> None:
        """Why an action was not applied, for the API call waiting on it."""
        try:
            await self.redis.set(self.key("result", event_id), rejected, ex=300)
        except (aioredis.RedisError, OSError):
            log.warning("could not record action result", extra={"event_id": event_id})

    async def result(self, event_id: str) -> str | None:
        raw = await self.redis.get(self.key("result", event_id))
        return raw.decode() if raw else None
