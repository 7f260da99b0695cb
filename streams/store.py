"""The Redis projection of the tickets: written idempotently by version, read by the web API."""
from __future__ import annotations

import asyncio
import logging
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta, timezone
from typing import TypeVar
from urllib.parse import unquote, urlsplit

import orjson
import redis.asyncio as aioredis
from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool

from handlers import escalation, performance
from schemas.config import Config
from schemas.enums import SEVERITY_RANK, Relation
from handlers.base import Heard
from schemas.records import Incident, Ticket

log = logging.getLogger("soc.store")
T = TypeVar("T")

BOARD_MAXLEN = 20_000
# Normal readings kept per device for the all-clear (rules.yaml all_clear asks for at most this many).
CALM_KEPT = 100

# The listing order of the API, as one sorted-set score: open before closed, then the more severe,
# then the newest dispatched (milliseconds; ZREVRANGE breaks an exact tie by ticket id, descending).
# Below 2**53, so Redis keeps it exact.
OPEN_WEIGHT = 10**14
SEVERITY_WEIGHT = 10**13
PAGE_FILTERS = ("status", "severity", "source", "community")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_TEMP_TTL_S = 10


CLIENT_OPTIONS = {"socket_timeout": 5, "socket_connect_timeout": 2, "health_check_interval": 10}
# A bounded client's command waits this long for one of its connections to come free, then fails.
CONNECTION_WAIT_S = 5.0


class _SentinelBlockingPool(SentinelConnectionPool, BlockingConnectionPool):
    """The Sentinel group's master, on a bounded pool whose commands wait for a free connection."""


def redis_client(url: str, max_connections: int | None = None) -> aioredis.Redis:
    """A client for `redis://` / `rediss://` URLs, or for the master a Sentinel group names:
    `redis+sentinel://[:password@]host1:26379,host2:26379/<service>[/<db>]` (the password is the
    Redis password; a failover moves the client to the new master by itself).

    With `max_connections`, a burst of commands past it waits up to CONNECTION_WAIT_S for a free
    connection instead of failing at once (redis-py's plain pool raises MaxConnectionsError)."""
    bounded = {"max_connections": max_connections, "timeout": CONNECTION_WAIT_S} if max_connections else {}
    if not url.startswith("redis+sentinel://"):
        if bounded:
            return aioredis.Redis.from_pool(BlockingConnectionPool.from_url(url, **CLIENT_OPTIONS, **bounded))
        return aioredis.from_url(url, **CLIENT_OPTIONS)
    parts = urlsplit(url)
    nodes = []
    for node in parts.netloc.rsplit("@", 1)[-1].split(","):
        host, _, port = node.rpartition(":")
        nodes.append((host, int(port or 26379)))
    path = [p for p in parts.path.split("/") if p]
    if not path:
        raise ValueError("a redis+sentinel URL needs the service name: redis+sentinel://host:26379/mymaster/0")
    db = int(path[1]) if len(path) > 1 else 0
    sentinel = Sentinel(nodes, socket_timeout=CLIENT_OPTIONS["socket_timeout"])
    return sentinel.master_for(path[0], db=db, password=unquote(parts.password) if parts.password else None,
                               **CLIENT_OPTIONS, **bounded,
                               **({"connection_pool_class": _SentinelBlockingPool} if bounded else {}))


async def until_written(write: Callable[[], Awaitable[T]], max_delay: float = 5.0) -> T:
    """write() again, backing off from 0.1 s to max_delay, until Redis takes it (the caller's partition
    waits; Kafka keeps its events)."""
    delay = 0.1
    while True:
        try:
            return await write()
        except (aioredis.RedisError, OSError) as exc:
            log.warning("redis write failed, retrying", extra={"retry_in_s": delay, "error": type(exc).__name__})
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_delay)


def millis(at: datetime) -> int:
    return (at - _EPOCH) // timedelta(milliseconds=1)


def silenced_json(incident: Incident, silence_id: str, source_ticket_id: str | None) -> str:
    """One line of the silenced list (GET /api/silenced): what arrived, and which silence (or
    `inhibit:<rule>` with the inhibiting ticket) kept it."""
    return orjson.dumps({
        "incident_id": incident.incident_id, "silence_id": silence_id, "source_ticket_id": source_ticket_id,
        "source": incident.source.value,
        "category": incident.category.value, "subcategory": incident.subcategory,
        "severity": incident.severity.value, "title": incident.title, "community": incident.community,
        "dedup_key": incident.dedup_key, "source_ref": incident.source_ref,
        "observed_at": incident.observed_at.isoformat(), "received_at": incident.received_at.isoformat(),
    }).decode()


def list_score(ticket: Ticket) -> int:
    millis = (ticket.dispatched_at - _EPOCH) // timedelta(milliseconds=1)
    return (2 if ticket.is_open else 1) * OPEN_WEIGHT + SEVERITY_RANK[ticket.severity] * SEVERITY_WEIGHT + millis


def list_sets(ticket: Ticket) -> list[str]:
    """The listing sets a ticket belongs in (key suffixes after the prefix): all, its inboxes, its
    department's own tickets, and one per filter value."""
    sets = ["tickets", *(f"inbox:{d}" for d in ticket.inboxes), f"owner:{ticket.department}"]
    for name in PAGE_FILTERS:
        value = getattr(ticket, name)
        if value is not None:
            sets.append(f"by:{name}:{getattr(value, 'value', value)}")
    return sets


# Idempotent by version: a replayed or redelivered ticket write is a no-op, so a crash between
# the Redis write and the offset commit never doubles anything. The hash's `sets` field names the
# listing sets the ticket is in (newline-separated key suffixes), so a write leaves the ones it
# no longer belongs in; `inboxes` is the field of hashes written before the listing sets existed.
UPSERT = """
local cur = tonumber(redis.call('HGET', KEYS[1], 'version') or '0')
if cur >= tonumber(ARGV[1]) then return 0 end
local new, order = {}, {}
for s in string.gmatch(ARGV[6], '[^\\n]+') do new[s] = true; order[#order + 1] = s end
local old = redis.call('HGET', KEYS[1], 'sets')
if old then
  for s in string.gmatch(old, '[^\\n]+') do
    if not new[s] then redis.call('ZREM', ARGV[5] .. ':' .. s, ARGV[3]) end
  end
else
  old = redis.call('HGET', KEYS[1], 'inboxes')
  if old then
    for d in string.gmatch(old, '[^,]+') do redis.call('ZREM', ARGV[5] .. ':inbox:' .. d, ARGV[3]) end
    redis.call('HDEL', KEYS[1], 'inboxes')
  end
end
for _, s in ipairs(order) do redis.call('ZADD', ARGV[5] .. ':' .. s, ARGV[4], ARGV[3]) end
redis.call('HSET', KEYS[1], 'version', ARGV[1], 'json', ARGV[2], 'sets', ARGV[6])
if ARGV[9] == '' then redis.call('ZREM', KEYS[4], ARGV[3]) else redis.call('ZADD', KEYS[4], ARGV[9], ARGV[3]) end
redis.call('HSET', KEYS[5], ARGV[3], ARGV[10])
if ARGV[11] == '' then redis.call('ZREM', KEYS[6], ARGV[3]) else redis.call('ZADD', KEYS[6], ARGV[11], ARGV[3]) end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[7], '*', 'ticket_id', ARGV[3], 'version', ARGV[1], 'kind', ARGV[8], 'json', ARGV[2])
return 1
"""

# A ticket past retention leaves the hot sets (every listing set, due index, gauges); its hash
# stays, so it is still found by id.
EVICT = """
local old = redis.call('HGET', KEYS[1], 'sets')
if old then
  for s in string.gmatch(old, '[^\\n]+') do redis.call('ZREM', ARGV[2] .. ':' .. s, ARGV[1]) end
end
old = redis.call('HGET', KEYS[1], 'inboxes')
if old then
  for d in string.gmatch(old, '[^,]+') do redis.call('ZREM', ARGV[2] .. ':inbox:' .. d, ARGV[1]) end
end
redis.call('HDEL', KEYS[1], 'sets', 'inboxes')
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
    def from_url(cls, url: str, prefix: str, config: Config, max_connections: int | None = None) -> "TicketStore":
        return cls(redis_client(url, max_connections), prefix, escalation.Dues(config))

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    async def save(self, tickets: Iterable[tuple[Ticket, str] | tuple[Ticket, str, bytes]],
                   evicted: Iterable[str] = (), suppressed: Iterable[tuple[Incident, str, str | None]] = ()) -> list[bool]:
        """Write (ticket, kind) pairs, drop `evicted` ticket ids from the hot sets and list the
        `suppressed` (incident, silence id) pairs, in one round trip; True where a ticket write was new.
        A third item, the ticket's JSON, spares a second serialization when the caller has one already."""
        evicted = list(evicted)
        suppressed = list(suppressed)
        async with self.redis.pipeline(transaction=False) as pipe:
            for incident, silence_id, source_ticket_id in suppressed:
                # The same incident always gives the same member: a replay adds nothing.
                pipe.zadd(self.key("silenced"), {silenced_json(incident, silence_id, source_ticket_id):
                                                 millis(incident.received_at)})
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
                          list_score(ticket), self.prefix, "\n".join(list_sets(ticket)),
                          BOARD_MAXLEN, kind, "" if due is None else due.timestamp(), performance.gauge_facts(ticket),
                          "" if ticket.closed_at is None else ticket.closed_at.timestamp()],
                    client=pipe,
                )
            return [bool(r) for r in (await pipe.execute())[len(suppressed) + len(evicted):]]

    async def get(self, ticket_id: str) -> Ticket | None:
        raw = await self.redis.hget(self.key("ticket", ticket_id), "json")
        return None if raw is None else Ticket.model_validate_json(raw)

    async def ids(self, department: str | None) -> list[str]:
        key = self.key("inbox", department) if department else self.key("tickets")
        return [i.decode() for i in await self.redis.zrevrange(key, 0, -1)]

    async def page(self, department: str | None, filters: dict[str, str], offset: int,
                   limit: int, relation: Relation | None = None) -> tuple[int, list[Ticket]]:
        """One page of the listing, in its order (open first, most severe, newest dispatched), read
        off the listing sets: (how many match, the tickets from `offset`, at most `limit`).
        `department` means its inbox (its own tickets and those it watches), narrowed by `relation` to
        its own (own) or to those it only watches (watched); `filters` maps names of PAGE_FILTERS to
        the wanted value (empty values are ignored)."""
        unknown = set(filters) - set(PAGE_FILTERS)
        if unknown:
            raise ValueError(f"unknown filter(s): {', '.join(sorted(unknown))}")
        if relation is not None and (department is None or relation is Relation.in_view):
            raise ValueError("a relation narrows a department's inbox to its own or its watched tickets")
        keys = [self.key("owner" if relation is Relation.own else "inbox", department)] if department else []
        keys += [self.key("by", name, value) for name, value in sorted(filters.items()) if value]
        # A department watches the tickets of its inbox that are not its own.
        minus = self.key("owner", department) if relation is Relation.watched else None
        combined = len(keys) > 1 or minus is not None
        source = self.key("tmp", "page", uuid.uuid4().hex) if combined else keys[0] if keys else self.key("tickets")
        async with self.redis.pipeline(transaction=True) as pipe:
            if minus is not None:
                pipe.zdiffstore(source, [keys[0], minus])
            if len(keys) > 1:
                # Every listing set scores a ticket the same, so MAX keeps the listing score.
                pipe.zinterstore(source, [source, *keys[1:]] if minus else keys, aggregate="MAX")
            if combined:
                pipe.expire(source, _TEMP_TTL_S)
            else:
                pipe.zcard(source)
            pipe.zrevrange(source, offset, offset + limit - 1)
            if combined:
                pipe.delete(source)
            replies = await pipe.execute()
        if combined:  # [zdiffstore], [zinterstore], expire, zrevrange, delete
            written = (minus is not None) + (len(keys) > 1)
            total, ids = replies[written - 1], replies[written + 1]
        else:  # zcard, zrevrange
            total, ids = replies
        if limit <= 0:  # a stop of offset - 1 could be -1: the whole set
            ids = []
        return total, await self.many([i.decode() for i in ids])

    async def open_or_closed_since(self, since: datetime) -> list[str]:
        """Open tickets (listing order) and then those closed at `since` or later (newest first)."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zrevrangebyscore(self.key("tickets"), "+inf", 2 * OPEN_WEIGHT)  # open_ids
            pipe.zrevrangebyscore(self.key("closed"), "+inf", since.timestamp())
            open_ids, closed_ids = await pipe.execute()
        return list(dict.fromkeys(i.decode() for i in (*open_ids, *closed_ids)))

    async def open_ids(self) -> list[str]:
        """Every open ticket (listing order)."""
        return [i.decode() for i in await self.redis.zrevrangebyscore(self.key("tickets"), "+inf", 2 * OPEN_WEIGHT)]

    async def open_of_severity(self, severities: Iterable[str], limit: int) -> tuple[int, list[Ticket]]:
        """Open tickets of these severities, most severe first and then newest dispatched: (how
        many there are, the first `limit`)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for severity in severities:
                pipe.zrevrangebyscore(self.key("by", "severity", severity), "+inf", 2 * OPEN_WEIGHT)
            ids = [i.decode() for found in await pipe.execute() for i in found]
        return len(ids), await self.many(ids[:limit])

    async def record_handover(self, record: dict, at: datetime) -> None:
        """A duty handover (its JSON), kept by time: handovers are few and stay."""
        await self.redis.zadd(self.key("duty", "handovers"), {orjson.dumps(record): at.timestamp()})

    async def handovers(self, since: datetime, until: datetime) -> list[dict]:
        """The handovers recorded in [since, until), oldest first."""
        raws = await self.redis.zrangebyscore(self.key("duty", "handovers"), since.timestamp(), f"({until.timestamp()}")
        return [orjson.loads(raw) for raw in raws]

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

    async def silenced(self, since: datetime, limit: int) -> list[dict]:
        """The newest `limit` suppressed incidents received since `since`, oldest first."""
        raws = await self.redis.zrevrangebyscore(self.key("silenced"), "+inf", millis(since), start=0, num=limit)
        return [orjson.loads(r) for r in reversed(raws)]

    async def suppressed_between(self, start: datetime, end: datetime) -> Counter[str]:
        """How many incidents received in [start, end) each silence (or `inhibit:<rule>`) kept from opening a
        ticket."""
        raws = await self.redis.zrangebyscore(self.key("silenced"), millis(start), f"({millis(end)}")
        return Counter(orjson.loads(r)["silence_id"] for r in raws)

    async def forget_silenced(self, before: datetime) -> None:
        await self.redis.zremrangebyscore(self.key("silenced"), "-inf", millis(before))

    # ------------------------------------------------------------------ heartbeats (handlers/heartbeat.py)

    async def record_heard(self, heard: Iterable[Heard]) -> None:
        """Each device's latest heartbeat (a replay or a late batch never moves it back) and its place."""
        heard = list(heard)
        if not heard:
            return
        # A batch holds many readings of one device: its heartbeat and place are written once, from the
        # latest; every reading counts for the all-clear, and each device's normal readings are trimmed once.
        latest = {}
        for h in heard:
            if (h.kind, h.device) not in latest or h.at >= latest[h.kind, h.device].at:
                latest[h.kind, h.device] = h
        async with self.redis.pipeline(transaction=False) as pipe:
            for h in latest.values():
                pipe.zadd(self.key("hb", h.kind), {h.device: h.at.timestamp()}, gt=True)
                pipe.hset(self.key("hb", "place"), f"{h.kind}|{h.device}", orjson.dumps([h.lat, h.lon]))
            calm_members = set()
            for h in heard:
                member = f"{h.kind}|{h.device}"
                if h.calm and h.observed_at is not None:  # the device's recent normal readings, by time
                    at = h.observed_at.timestamp()
                    pipe.zadd(self.key("calm", member), {str(at): at})
                    calm_members.add(member)
                elif h.calm is False and h.observed_at is not None:  # its latest alarm, and the key it raised
                    pipe.zadd(self.key("calm", "alarm"), {member: h.observed_at.timestamp()}, gt=True)
                    pipe.hset(self.key("calm", "key"), member, h.alarm_key)
            for member in calm_members:
                pipe.zremrangebyrank(self.key("calm", member), 0, -(CALM_KEPT + 1))
            await pipe.execute()

    async def alarms(self) -> list[tuple[str, str, float, str, float | None]]:
        """Every device's latest alarm: (kind, device, its time, the dedup key it raised, the alarm an
        all-clear was last sent for)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrange(self.key("calm", "alarm"), 0, -1, withscores=True)
            pipe.hgetall(self.key("calm", "key"))
            pipe.hgetall(self.key("calm", "sent"))
            found, keys, sent = await pipe.execute()
        out = []
        for member, at in found:
            kind, device = member.decode().split("|", 1)
            out.append((kind, device, at, keys.get(member, b"").decode(), float(sent[member]) if member in sent else None))
        return out

    async def calm_since(self, kind: str, device: str, after: float) -> list[float]:
        """The device's normal readings observed after `after`, oldest first (the last CALM_KEPT)."""
        return [float(m) for m in await self.redis.zrangebyscore(self.key("calm", f"{kind}|{device}"), f"({after}", "+inf")]

    async def mark_cleared(self, kind: str, device: str, alarm_at: float) -> None:
        await self.redis.hset(self.key("calm", "sent"), f"{kind}|{device}", alarm_at)

    async def heard_before(self, kind: str, before: datetime) -> list[tuple[str, float]]:
        """The devices of a kind whose last heartbeat is before `before`, with its time."""
        found = await self.redis.zrangebyscore(self.key("hb", kind), "-inf", f"({before.timestamp()}", withscores=True)
        return [(device.decode(), score) for device, score in found]

    async def newest_heard(self, kind: str) -> datetime | None:
        """The newest heartbeat of any device of a kind."""
        found = await self.redis.zrevrange(self.key("hb", kind), 0, 0, withscores=True)
        return datetime.fromtimestamp(found[0][1], timezone.utc) if found else None

    async def last_heard(self, kind: str, devices: list[str]) -> list[float | None]:
        return await self.redis.zmscore(self.key("hb", kind), devices) if devices else []

    async def place(self, kind: str, device: str) -> tuple[float, float] | None:
        raw = await self.redis.hget(self.key("hb", "place"), f"{kind}|{device}")
        return None if raw is None else tuple(orjson.loads(raw))

    async def offline(self) -> dict[tuple[str, str], float]:
        """The devices reported offline, with the heartbeat their silence began after."""
        marks = await self.redis.hgetall(self.key("hb", "offline"))
        return {tuple(k.decode().split("|", 1)): float(v) for k, v in marks.items()}

    async def mark_offline(self, kind: str, device: str, last_heard: float) -> None:
        await self.redis.hset(self.key("hb", "offline"), f"{kind}|{device}", last_heard)

    async def unmark_offline(self, kind: str, device: str) -> None:
        await self.redis.hdel(self.key("hb", "offline"), f"{kind}|{device}")

    async def forget_device(self, kind: str, device: str) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.zrem(self.key("hb", kind), device)
            pipe.hdel(self.key("hb", "offline"), f"{kind}|{device}")
            await pipe.execute()

    async def ping(self) -> bool:
        try:
            return bool(await self.redis.ping())
        except (aioredis.RedisError, OSError):
            return False

    async def save_with_retry(self, tickets: list[tuple], evicted: Iterable[str] = (),
                              suppressed: Iterable[tuple[Incident, str, str | None]] = ()) -> list[bool]:
        """Block the partition until Redis takes the write: Kafka keeps the events meanwhile."""
        evicted, suppressed = list(evicted), list(suppressed)
        return await until_written(lambda: self.save(tickets, evicted, suppressed))

    async def record_result(self, event_id: str, rejected: str) -> None:
        """Why an action was not applied, for the API call waiting on it."""
        try:
            await self.redis.set(self.key("result", event_id), rejected, ex=300)
        except (aioredis.RedisError, OSError):
            log.warning("could not record action result", extra={"event_id": event_id})

    async def result(self, event_id: str) -> str | None:
        raw = await self.redis.get(self.key("result", event_id))
        return raw.decode() if raw else None
