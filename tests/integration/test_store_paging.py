"""TicketStore.page against the machine's Redis: every page equals a plain filter + sort + slice of
the same tickets (a department's inbox whole, its own tickets, the ones it only watches), also after writes
that move a ticket between listing sets and after an eviction."""
from __future__ import annotations

import itertools
import os
from datetime import datetime, timedelta, timezone
from functools import partial
from zoneinfo import ZoneInfo

import pytest
import redis.asyncio as aioredis

from handlers import escalation
from handlers.routing import route
from handlers.tickets import open_ticket
from schemas.enums import Category, Relation, Severity, Source, TicketStatus
from schemas.records import Incident, Ticket
from streams.store import PAGE_FILTERS, TicketStore, list_sets
from tests.support import CONFIG, marker

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

REDIS_URL = os.environ.get("SOC_REDIS_URL", "redis://127.0.0.1:6379/0")
NOW = datetime(2026, 5, 12, 9, 30, tzinfo=ZoneInfo("Asia/Shanghai"))
SOURCES = {Source.traffic: Category.traffic_accident, Source.flood: Category.flood_waterlogging,
           Source.city: Category.city_sanitation, Source.construction: Category.site_safety}
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
COMMUNITIES = ["haibin", "wanghai", "yugang", None]
STATUSES = list(TicketStatus)
SEVERITIES = list(Severity)


def scripted(n: int) -> list[Ticket]:
    """n tickets across sources, departments, communities, severities and statuses; two pairs share
    a dispatch time to the millisecond (the order then falls back to the ticket id, descending)."""
    config = CONFIG
    tickets = []
    for i in range(n):
        source = list(SOURCES)[i % 4]
        severity = SEVERITIES[(i // 2) % 4]
        community = COMMUNITIES[(i // 3) % 4]
        when = NOW - timedelta(minutes=7 * i, milliseconds=i) if i not in (5, 11) else NOW - timedelta(hours=9)
        incident = Incident(
            incident_id=f"page-{i}", source=source, category=SOURCES[source], subcategory="x", severity=severity,
            title=f"t{i}", lat=22.53, lon=113.92, community=community, observed_at=when - timedelta(minutes=1),
            received_at=when, dedup_key=f"page:{i}", source_ref=f"ref-{i}")
        ticket = open_ticket(config, incident, route(config, SOURCES[source], severity, community or "haibin"), when)
        status = STATUSES[(i * 3) % len(STATUSES)]
        closed_at = when + timedelta(minutes=30) if status is TicketStatus.closed else None
        tickets.append(ticket.model_copy(update={"status": status, "closed_at": closed_at, "version": 1}))
    assert len({t.ticket_id for t in tickets}) == n
    return tickets


def related(ticket: Ticket, department: str | None, relation: Relation | None) -> bool:
    if department is None:
        return True
    if relation is Relation.own:
        return ticket.department == department
    return department in ticket.inboxes and (relation is None or ticket.department != department)


def expected(tickets: dict[str, Ticket], department: str | None, filters: dict[str, str],
             relation: Relation | None = None) -> list[str]:
    chosen = [t for t in tickets.values()
              if related(t, department, relation)
              and all(getattr(getattr(t, f), "value", getattr(t, f)) == v for f, v in filters.items())]
    chosen.sort(key=lambda t: t.ticket_id, reverse=True)  # the tie-break, kept by the stable sort
    chosen.sort(key=lambda t: (t.status is TicketStatus.closed, -t.severity.rank,
                               -((t.dispatched_at - EPOCH) // timedelta(milliseconds=1))))
    return [t.ticket_id for t in chosen]


@pytest.fixture
async def store():
    client = aioredis.from_url(REDIS_URL, socket_timeout=5)
    prefix = f"soc-paging-{marker()}"
    try:
        await client.ping()
    except (aioredis.RedisError, OSError):
        await client.aclose()
        pytest.skip(f"no Redis at {REDIS_URL}")
    store = TicketStore(client, prefix, partial(escalation.next_due, CONFIG))
    try:
        yield store
    finally:
        keys = [k async for k in client.scan_iter(f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
        await client.aclose()


async def check_pages(store: TicketStore, tickets: dict[str, Ticket], departments, combos) -> int:
    """Every department x relation x filter combination at offsets 0, the middle and past the end;
    returns how many pages were compared."""
    compared = 0
    for department in departments:
        for relation, filters in itertools.product((None, Relation.own, Relation.watched) if department else (None,),
                                                   combos):
            want = expected(tickets, department, filters, relation)
            for offset, limit in ((0, 5), (0, 200), (len(want) // 2, 3), (len(want), 5), (len(want) + 7, 5),
                                  (1, 0)):
                total, page = await store.page(department, filters, offset, limit, relation)
                assert total == len(want), (department, relation, filters)
                assert [t.ticket_id for t in page] == want[offset:offset + limit], (department, relation, filters, offset)
                compared += 1
    return compared


def combos_of(tickets: dict[str, Ticket]) -> list[dict[str, str]]:
    """No filter, each filter alone, status x severity, and a few triples and the quadruple."""
    values = {"status": [s.value for s in STATUSES], "severity": [s.value for s in SEVERITIES],
              "source": [s.value for s in Source], "community": ["haibin", "wanghai", "nowhere"]}
    combos = [{}]
    combos += [{name: v} for name in PAGE_FILTERS for v in values[name]]
    combos += [{"status": s, "severity": v} for s, v in itertools.product(values["status"], values["severity"])]
    combos += [{"status": s, "source": v, "community": c}
               for s, v, c in itertools.product(values["status"][:3], values["source"], values["community"][:2])]
    combos += [{"status": "dispatched", "severity": "red", "source": "traffic", "community": "haibin"}]
    return combos


DEPARTMENTS = [None, "ops_centre", "traffic_police", "flood_control", "ws_haibin", "construction_safety",
               "city_management", "environment"]


async def test_pages_match_a_plain_filter_sort_and_slice(store):
    tickets = {t.ticket_id: t for t in scripted(30)}
    assert all(await store.save([(t, "test") for t in tickets.values()]))
    combos = combos_of(tickets)
    assert expected(tickets, "ops_centre", {}, Relation.watched)  # the centre watches the red ones
    assert await check_pages(store, tickets, DEPARTMENTS, combos) > 1000
    # Ordering sanity in the data itself: open before closed, then severity.
    _, everything = await store.page(None, {}, 0, 200)
    assert [t.is_open for t in everything] == sorted((t.is_open for t in everything), reverse=True)
    # No temporary intersection key is left behind.
    assert [k async for k in store.redis.scan_iter(store.key("tmp", "*"))] == []


async def test_updates_move_tickets_between_sets_and_eviction_leaves_them_all(store):
    tickets = {t.ticket_id: t for t in scripted(30)}
    await store.save([(t, "test") for t in tickets.values()])
    by_id = list(tickets)
    open_traffic = next(t for t in tickets.values() if t.department == "traffic_police" and t.is_open)
    open_other = next(t for t in tickets.values() if t.is_open and t.severity is not Severity.red
                      and t.ticket_id != open_traffic.ticket_id)
    evicted = next(t for t in tickets.values() if not t.is_open)

    def bump(ticket: Ticket, **update) -> Ticket:
        new = ticket.model_copy(update={**update, "version": ticket.version + 1})
        tickets[new.ticket_id] = new
        return new

    # Redispatch to another department, then close; raise a severity; a stale version is ignored.
    moved = bump(open_traffic, department="city_management")
    raised = bump(open_other, severity=Severity.red)
    assert await store.save([(moved, "redispatch"), (raised, "raise")]) == [True, True]
    assert await store.save([(open_traffic, "stale")]) == [False]
    await check_pages(store, tickets, DEPARTMENTS, combos_of(tickets))
    closed = bump(moved, status=TicketStatus.closed, closed_at=NOW)
    assert await store.save([(closed, "close")]) == [True]
    await check_pages(store, tickets, DEPARTMENTS, combos_of(tickets))
    total, page = await store.page("traffic_police", {}, 0, 200)
    assert moved.ticket_id not in {t.ticket_id for t in page}
    total, page = await store.page("city_management", {"status": "closed"}, 0, 200)
    assert moved.ticket_id in {t.ticket_id for t in page}

    # The hash names exactly the sets the ticket is in.
    sets = (await store.redis.hget(store.key("ticket", closed.ticket_id), "sets")).decode().split("\n")
    assert sets == list_sets(closed)
    for suffix in ("inbox:traffic_police", "by:status:dispatched", "by:status:accepted"):
        assert await store.redis.zscore(store.key(suffix), closed.ticket_id) is None

    # Eviction: out of every page and every listing set, still found by id.
    assert await store.save([], evicted=[evicted.ticket_id]) == []
    remaining = {i: t for i, t in tickets.items() if i != evicted.ticket_id}
    await check_pages(store, remaining, DEPARTMENTS, combos_of(remaining))
    for suffix in list_sets(evicted):
        assert await store.redis.zscore(store.key(suffix), evicted.ticket_id) is None
    assert (await store.get(evicted.ticket_id)) == evicted
    assert set(by_id) - set(remaining) == {evicted.ticket_id}


async def test_open_or_closed_since(store):
    tickets = scripted(30)
    await store.save([(t, "test") for t in tickets])
    since = NOW - timedelta(hours=2)
    want = {t.ticket_id for t in tickets if t.is_open or (t.closed_at and t.closed_at >= since)}
    got = await store.open_or_closed_since(since)
    assert len(got) == len(set(got)) and set(got) == want
    assert {t.ticket_id for t in tickets if not t.is_open} - want  # some closed ones are older


async def test_legacy_hash_with_inboxes_field_is_moved_on_its_next_write(store):
    ticket = scripted(1)[0]
    legacy = store.key("ticket", ticket.ticket_id)
    await store.redis.hset(legacy, mapping={"version": 1, "json": ticket.model_dump_json(),
                                            "inboxes": ",".join(ticket.inboxes)})
    for department in ticket.inboxes:
        await store.redis.zadd(store.key("inbox", department), {ticket.ticket_id: 1})
    moved = ticket.model_copy(update={"department": "environment", "watchers": [], "version": 2})
    assert await store.save([(moved, "redispatch")]) == [True]
    assert await store.redis.hget(legacy, "inboxes") is None
    for department in ticket.inboxes:
        assert await store.redis.zscore(store.key("inbox", department), ticket.ticket_id) is None
    assert (await store.page("environment", {}, 0, 10))[1] == [moved]


async def test_unknown_filter_is_refused(store):
    with pytest.raises(ValueError):
        await store.page(None, {"title": "x"}, 0, 10)


async def dump(store: TicketStore) -> dict:
    """Every key of the store but the board stream, by suffix, with its content."""
    out = {}
    async for raw in store.redis.scan_iter(f"{store.prefix}:*", count=1000):
        key = raw.decode()
        suffix = key[len(store.prefix) + 1:]
        kind = (await store.redis.type(key)).decode()
        if kind == "zset":
            out[suffix] = await store.redis.zrange(key, 0, -1, withscores=True)
        elif kind == "hash":
            out[suffix] = await store.redis.hgetall(key)
        elif kind != "stream":
            out[suffix] = kind
    return out


async def test_rebuild_from_latest_versions_equals_the_incremental_writes(store):
    """What `soc rebuild` does (latest version of each ticket, then evict those past retention)
    leaves the same keys, fields and scores as the worker's history of writes and sweeps."""
    tickets = {t.ticket_id: t for t in scripted(30)}
    await store.save([(t, "test") for t in tickets.values()])
    changed = []
    for i, t in enumerate(list(tickets.values())[:12]):
        update = [{"department": "environment", "watchers": []}, {"severity": Severity.red},
                  {"status": TicketStatus.closed, "closed_at": NOW}][i % 3]
        changed.append(t.model_copy(update={**update, "version": t.version + 1}))
    await store.save([(t, "update") for t in changed])
    tickets.update({t.ticket_id: t for t in changed})
    cutoff = NOW - timedelta(hours=1)
    expired = [t.ticket_id for t in tickets.values() if t.closed_at is not None and t.closed_at < cutoff]
    assert expired
    await store.save([], evicted=expired)
    rebuilt = TicketStore(store.redis, f"{store.prefix}-rebuilt", store.next_due)
    try:
        await rebuilt.save([(t, "rebuild") for t in sorted(tickets.values(), key=lambda t: t.dispatched_at)])
        await rebuilt.save([], evicted=expired)
        assert await dump(rebuilt) == await dump(store)
    finally:
        keys = [k async for k in store.redis.scan_iter(f"{rebuilt.prefix}:*", count=1000)]
        if keys:
            await store.redis.delete(*keys)
