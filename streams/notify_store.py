"""The notifier's state in Redis: which deliveries exist, each channel's queue, and the notification log.

- ``notify:known`` (sorted set, delivery id -> its change's time): every delivery ever decided. A replayed
  ticket finds its deliveries here and queues nothing again (the notifier's dedup, read before queueing).
- ``notify:outbox:<channel>:red`` and ``notify:outbox:<channel>`` (sorted sets, delivery id -> when it may
  go; red apart so that it never waits behind a backlog) and ``notify:item`` (hash, delivery id -> Delivery
  JSON): what a channel still has to send. A delivery leaves them only after its send
  succeeded or it was given up, in the same step that writes its log entry: the effect is recorded after
  it happened, so a crash in between repeats a message and never loses one.
- ``notify:log`` (sorted set of LogEntry JSON by time) and ``notify:log:ticket:<id>`` (list): every
  attempt and result, for ``GET /api/notifications`` and the ticket's history.
- ``notify:sent:<robot>``: the times of recent requests to one robot (its URL), for the vendor's rate limit;
  ``notify:state:<channel>``
  the failures in a row, when to try again and when the last non-red group went; ``notify:lease:<channel>``
  which worker sends for the channel (one at a time, so a limit is one budget for all workers).
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import redis.asyncio as aioredis

from schemas.enums import Severity
from schemas.notify import Delivery, LogEntry

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

# KEYS: known, item, log. ARGV: prefix, now_ms, log_ttl_s, then 7 per delivery:
# id, at_ms, ready_ms (empty when not to be sent), delivery json, outbox key suffix, log json, ticket id.
# Returns the ids that were new.
ENQUEUE = """
local added = {}
for i = 4, #ARGV, 7 do
  local id = ARGV[i]
  if not redis.call('ZSCORE', KEYS[1], id) then
    redis.call('ZADD', KEYS[1], ARGV[i + 1], id)
    if ARGV[i + 2] ~= '' then
      redis.call('HSET', KEYS[2], id, ARGV[i + 3])
      redis.call('ZADD', ARGV[1] .. ':notify:' .. ARGV[i + 4], ARGV[i + 2], id)
    end
    redis.call('ZADD', KEYS[3], ARGV[2], ARGV[i + 5])
    local per_ticket = ARGV[1] .. ':notify:log:ticket:' .. ARGV[i + 6]
    redis.call('RPUSH', per_ticket, ARGV[i + 5])
    redis.call('EXPIRE', per_ticket, ARGV[3])
    added[#added + 1] = id
  end
end
return added
"""

# KEYS: lease. ARGV: owner, ttl_ms. Takes a free lease or renews one's own.
LEASE = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

# KEYS: lease. ARGV: owner. Gives the lease up if it is one's own (a clean stop hands the channel over at once).
RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def millis(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(milliseconds=1)


def outbox(channel: str, red: bool) -> str:
    return f"outbox:{channel}:red" if red else f"outbox:{channel}"


class NotificationStore:
    def __init__(self, client: aioredis.Redis, prefix: str, horizon: timedelta):
        self.redis = client
        self.prefix = prefix
        # How long the log and the known deliveries are kept: a change older than this is never queued.
        self.horizon = horizon
        self._enqueue = client.register_script(ENQUEUE)
        self._lease = client.register_script(LEASE)
        self._release = client.register_script(RELEASE)

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, "notify", *parts))

    async def enqueue(self, items: list[tuple[Delivery, datetime | None, LogEntry]], now: datetime) -> set[str]:
        """Queue each (delivery, ready_at or None when muted, its first log entry) not known yet; the ids queued."""
        if not items:
            return set()
        args: list = [self.prefix, millis(now), int(self.horizon.total_seconds())]
        for delivery, ready, entry in items:
            args += [delivery.id, millis(delivery.at), "" if ready is None else millis(ready),
                     delivery.model_dump_json(), outbox(delivery.channel, delivery.severity is Severity.red),
                     entry.model_dump_json(), delivery.ticket_id]
        added = await self._enqueue(keys=[self.key("known"), self.key("item"), self.key("log")], args=args)
        return {a.decode() for a in added}

    async def lease(self, channel: str, owner: str, ttl: timedelta) -> bool:
        return bool(await self._lease(keys=[self.key("lease", channel)],
                                      args=[owner, int(ttl.total_seconds() * 1000)]))

    async def release(self, channel: str, owner: str) -> None:
        await self._release(keys=[self.key("lease", channel)], args=[owner])

    async def ready(self, channel: str, now: datetime, limit: int) -> list[Delivery]:
        """What may go now: red first, then the rest, at most `limit`."""
        ids = await self.redis.zrangebyscore(self.key(outbox(channel, True)), "-inf", millis(now), start=0, num=limit)
        if len(ids) < limit:
            ids += await self.redis.zrangebyscore(self.key(outbox(channel, False)), "-inf", millis(now),
                                                  start=0, num=limit - len(ids))
        if not ids:
            return []
        raws = await self.redis.hmget(self.key("item"), ids)
        return [Delivery.model_validate_json(r) for r in raws if r is not None]

    async def pending(self, channel: str) -> int:
        return sum([await self.redis.zcard(self.key(outbox(channel, red))) for red in (True, False)])

    async def sent_within(self, robot: str, now: datetime, windows: tuple[float, ...]) -> dict[float, int]:
        key, at = self.key("sent", robot), millis(now)
        return {w: await self.redis.zcount(key, at - int(w * 1000) + 1, "+inf") for w in windows}

    async def record_sent(self, robot: str, now: datetime, requests: int, keep_s: float) -> None:
        key, at = self.key("sent", robot), millis(now)
        # Members unique per request: two sends in one millisecond both count.
        count = await self.redis.incrby(self.key("sent-seq", robot), requests)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(key, "-inf", at - int(keep_s * 1000))
            for n in range(requests):
                pipe.zadd(key, {f"{at}:{count - n}": at})
            await pipe.execute()

    async def channel_state(self, channel: str) -> dict[str, str]:
        raw = await self.redis.hgetall(self.key("state", channel))
        return {k.decode(): v.decode() for k, v in raw.items()}

    async def set_channel_state(self, channel: str, **fields) -> None:
        await self.redis.hset(self.key("state", channel), mapping={k: str(v) for k, v in fields.items()})

    async def attempts(self, ids: list[str]) -> list[int]:
        raws = await self.redis.hmget(self.key("attempts"), ids) if ids else []
        return [int(r or 0) for r in raws]

    async def log(self, entries: list[LogEntry], done: list[Delivery] = ()) -> None:
        """Append entries to the log; the deliveries in `done` leave their queue in the same round trip."""
        async with self.redis.pipeline(transaction=True) as pipe:
            for entry in entries:
                js = entry.model_dump_json()
                pipe.zadd(self.key("log"), {js: millis(entry.at)})
                pipe.rpush(self.key("log", "ticket", entry.ticket_id), js)
                pipe.expire(self.key("log", "ticket", entry.ticket_id), int(self.horizon.total_seconds()))
                if entry.result == "failed":
                    pipe.hincrby(self.key("attempts"), entry.delivery_id, 1)
            for delivery in done:
                pipe.zrem(self.key(outbox(delivery.channel, delivery.severity is Severity.red)), delivery.id)
                pipe.hdel(self.key("item"), delivery.id)
                pipe.hdel(self.key("attempts"), delivery.id)
            await pipe.execute()

    async def trim(self, now: datetime) -> None:
        oldest = millis(now - self.horizon)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(self.key("known"), "-inf", oldest)
            pipe.zremrangebyscore(self.key("log"), "-inf", oldest)
            await pipe.execute()

    async def latest(self, since: datetime, limit: int, department: str | None = None,
                     scan: int = 20_000) -> list[LogEntry]:
        """The newest `limit` entries since `since` (of the department's tickets when given), oldest first;
        at most `scan` entries are read."""
        found: list[LogEntry] = []
        start = 0
        while len(found) < limit and start < scan:
            raws = await self.redis.zrevrangebyscore(self.key("log"), "+inf", millis(since), start=start, num=500)
            if not raws:
                break
            start += len(raws)
            entries = (LogEntry.model_validate_json(r) for r in raws)
            found += [e for e in entries if department is None or department in e.departments]
        return list(reversed(found[:limit]))

    async def between(self, start: datetime, end: datetime, scan: int = 50_000) -> list[LogEntry]:
        """The entries of [start, end), oldest first, at most `scan` (a review's notifications)."""
        raws = await self.redis.zrangebyscore(self.key("log"), millis(start), f"({millis(end)}", start=0, num=scan)
        return [LogEntry.model_validate_json(r) for r in raws]

    async def ticket_entries(self, ticket_id: str) -> list[LogEntry]:
        return [LogEntry.model_validate_json(r) for r in await self.redis.lrange(self.key("log", "ticket", ticket_id), 0, -1)]
