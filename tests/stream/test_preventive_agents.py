"""未诉先办 through the real agents: while a rainstorm period is on, the timer sends each recurring place's
opening once, to its key, only from the worker that owns it, and not once the ticket is in the store (nor
reads every ticket's facts again before a minute has passed);
decide_tickets takes the opening (one preventive ticket on soc.tickets), and the same opening again, or a
second worker's built a moment later, opens nothing more."""
from __future__ import annotations

from datetime import timedelta

import pytest

from handlers import hotspots, performance, preventive
from schemas.enums import Category, Hazard, Severity, Source, TicketKind, TicketStatus
from schemas.preventive import PreventiveOpen
from schemas.records import KeyState, Ticket
from schemas.response import MANUAL, ResponseChange
from streams.topology import sweeps
from streams.topology.pipeline import SentSteps
from tests.stream.conftest import NOW, put_on

pytestmark = pytest.mark.asyncio(loop_scope="session")

LAT, LON = 22.5294, 113.9286


def reported(n: int, days_ago: int) -> Ticket:
    at = NOW - timedelta(days=days_ago)
    return Ticket(ticket_id=f"T-{n}", incident_id=f"I-{n}", source_ref=f"R-{n}", dedup_key=f"k{n}",
                  department="flood_control", source=Source.flood, category=Category.flood_waterlogging,
                  subcategory="waterlogging", severity=Severity.yellow, title="积水", lat=LAT, lon=LON + n * 1e-5,
                  observed_at=at, received_at=at, last_seen_at=at, dispatched_at=at,
                  accept_due=at + timedelta(minutes=30), resolve_due=at + timedelta(hours=4),
                  status=TicketStatus.closed)


@pytest.fixture
def raining(pipeline, store, monkeypatch):
    """The centre raised a flood level 2 minutes ago; one underpass flooded three times this month."""
    change = ResponseChange(at=NOW - timedelta(minutes=2), level="III", reason="暴雨", trigger=MANUAL, by="张值班",
                            hazard=Hazard.flood)
    monkeypatch.setattr(pipeline.books.response, "by_key", lambda: {MANUAL: [change]})
    monkeypatch.setattr(pipeline, "sent_preventive", SentSteps())
    monkeypatch.setattr(pipeline, "preventive_done", {})
    store.redis.hgetall.return_value = {f"T-{n}".encode(): performance.gauge_facts(reported(n, d))
                                        for n, d in ((1, 20), (2, 9), (3, 2))}
    store.many.return_value = []


async def test_the_timer_sends_each_places_opening_once_and_only_from_the_owner(pipeline, sent, store, raining,
                                                                              monkeypatch):
    monkeypatch.setattr(pipeline, "owns", lambda key: False)
    await sweeps.open_preventive_tickets(pipeline)
    assert sent["ticket_events"].calls == []
    # The worker that owns the place's key.
    monkeypatch.setattr(pipeline, "preventive_done", {})
    monkeypatch.setattr(pipeline, "owns", lambda key: key.startswith(preventive.KEY_PREFIX))
    await sweeps.open_preventive_tickets(pipeline)
    await sweeps.open_preventive_tickets(pipeline)  # the next tick, the opening not yet taken
    [(key, value)] = sent["ticket_events"].calls
    opening = PreventiveOpen.model_validate_json(value)
    assert key == preventive.key_of(opening).encode()
    assert (opening.period, opening.category, opening.department) == (
        "rainstorm@20260512T012800Z", Category.flood_waterlogging, "flood_control")
    assert opening.description.startswith("此处近30天积水3次")
    # Once the store holds the ticket, nothing more is sent, however long the period lasts.
    monkeypatch.setattr(store.many, "side_effect",
                        lambda ids: [reported(0, 0).model_copy(update={"ticket_id": i}) for i in ids])
    monkeypatch.setattr(pipeline, "sent_preventive", SentSteps())
    await sweeps.open_preventive_tickets(pipeline)
    assert len(sent["ticket_events"].calls) == 1
    # Every place has its ticket: the facts are not read again before PREVENTIVE_RECHECK has passed.
    reads = store.redis.hgetall.await_count
    await sweeps.open_preventive_tickets(pipeline)
    assert store.redis.hgetall.await_count == reads
    monkeypatch.setattr(pipeline, "clock", lambda: NOW + sweeps.PREVENTIVE_RECHECK)
    await sweeps.open_preventive_tickets(pipeline)
    assert store.redis.hgetall.await_count == reads + 1 and len(sent["ticket_events"].calls) == 1


async def test_decide_tickets_opens_one_preventive_ticket_per_place_and_period(pipeline, sent, store, raining):
    later = NOW + timedelta(seconds=30)
    [first] = openings(pipeline, NOW)
    [second] = openings(pipeline, later)  # another worker's, built half a minute later
    assert first.event_id == second.event_id and first.at != second.at
    key = preventive.key_of(first)
    async with pipeline.agents["decide_tickets"].test_context() as agent:
        for n, command in enumerate((first, first, second), 1):  # a replay, then the second worker's
            await put_on(agent, "soc.ticket-events", command.model_dump_json().encode(), key=key.encode())
            await sent["tickets"].wait_for(n)  # each in a batch of its own, taken before the next
    assert pipeline.dedup_key_to_tickets.get(key) is not None
    held = KeyState.model_validate_json(pipeline.dedup_key_to_tickets[key])
    [ticket] = held.tickets.values()
    written = [Ticket.model_validate_json(v) for _, v in sent["tickets"].calls]
    # One ticket, its first version each time, opened at the first opening's time.
    assert {t.model_dump_json() for t in written} == {ticket.model_dump_json()}
    assert (ticket.kind, ticket.version, ticket.dispatched_at) == (TicketKind.preventive, 1, NOW)
    kinds = {write[1] for call in store.save_with_retry.await_args_list for write in call.args[0]}
    assert kinds == {"preventive_open"}


def openings(pipeline, at) -> list[PreventiveOpen]:
    facts = {k.decode(): performance.stored_facts(v) for k, v in pipeline.store.redis.hgetall.return_value.items()}
    [period] = preventive.periods(pipeline.config, pipeline.books.response.by_key(), [], at)
    places = preventive.places(pipeline.config, period, hotspots.sightings(facts), [], at)
    return preventive.openings(pipeline.config, period, places, at)
