"""The owner's timers: escalation steps and retention sweeps are sent only for keys in this
worker's partitions, each step once, keyed by the ticket's dedup key."""
from __future__ import annotations

from datetime import timedelta

import pytest

from handlers.routing import route
from handlers.tickets import open_ticket
from schemas.enums import Category, Severity, TicketStatus
from schemas.records import Incident, TicketAction, TicketEvent
from streams.topology import sweeps
from streams.topology.pipeline import RESEND_STEP_AFTER, SentSteps
from tests.stream.conftest import NOW

pytestmark = pytest.mark.asyncio(loop_scope="session")


def red_ticket(pipeline, station: str, opened_ago: timedelta):
    at = NOW - opened_ago
    incident = Incident(
        incident_id=f"floo-timer-{station}", source="flood", category=Category.flood_waterlogging,
        subcategory="waterlogging", severity=Severity.red, title="积水", lat=22.5297, lon=113.9098,
        community="liyuan", observed_at=at, received_at=at, dedup_key=f"flood:flood_waterlogging:{station}",
        source_ref=f"{station}@{at.isoformat()}")
    config = pipeline.config
    return open_ticket(config, incident, route(config, incident.category, incident.severity, incident.community), at)


async def test_due_steps_are_sent_once_and_only_for_owned_keys(pipeline, store, sent, monkeypatch):
    mine, theirs = red_ticket(pipeline, "ST-MINE", timedelta(hours=6)), red_ticket(pipeline, "ST-THEIRS", timedelta(hours=6))
    store.due_ids.return_value = [mine.ticket_id, theirs.ticket_id]
    store.many.return_value = [mine, theirs]
    monkeypatch.setattr(pipeline, "owns", lambda key: key == mine.dedup_key)
    monkeypatch.setattr(pipeline, "sent_steps", SentSteps())
    await sweeps.escalate_overdue_tickets(pipeline)
    first = list(sent["ticket_events"].calls)
    await sweeps.escalate_overdue_tickets(pipeline)  # the next tick, the steps not yet taken
    assert sent["ticket_events"].calls == first
    assert first and {key for key, _ in first} == {mine.dedup_key.encode()}
    events = [TicketEvent.model_validate_json(value) for _, value in first]
    assert {e.ticket_id for e in events} == {mine.ticket_id}
    assert len({e.event_id for e in events}) == len(events)
    assert all(e.action is TicketAction.escalate and e.stage and e.step for e in events)


async def test_a_step_still_not_taken_is_sent_again_after_a_minute_then_after_twice_as_long_each_time(
        pipeline, store, sent, monkeypatch):
    ticket = red_ticket(pipeline, "ST-LOST", timedelta(hours=6))
    store.due_ids.return_value = [ticket.ticket_id]
    store.many.return_value = [ticket]
    monkeypatch.setattr(pipeline, "owns", lambda key: True)
    monkeypatch.setattr(pipeline, "sent_steps", SentSteps())
    await sweeps.escalate_overdue_tickets(pipeline)
    once = len(sent["ticket_events"].calls)
    sends = []
    for seconds in (61, 180, 182, 421, 423, 600):  # sent at 0 s, then 61 s, 182 s (+120), 423 s (+240)
        monkeypatch.setattr(pipeline, "clock", lambda: NOW + timedelta(seconds=seconds))
        await sweeps.escalate_overdue_tickets(pipeline)
        sends.append(len(sent["ticket_events"].calls) // once)
    assert once and RESEND_STEP_AFTER == timedelta(seconds=60)
    assert sends == [2, 2, 3, 3, 4, 4]


async def test_the_sweep_expires_only_owned_tickets_closed_past_retention(pipeline, store, sent, monkeypatch):
    retention = timedelta(days=pipeline.settings.ticket_retention_days)
    old = red_ticket(pipeline, "ST-OLD", retention + timedelta(days=2)).model_copy(
        update={"status": TicketStatus.closed, "closed_at": NOW - retention - timedelta(days=1)})
    recent = red_ticket(pipeline, "ST-RECENT", timedelta(days=2)).model_copy(
        update={"status": TicketStatus.closed, "closed_at": NOW - timedelta(days=1)})
    foreign = red_ticket(pipeline, "ST-FOREIGN", retention + timedelta(days=2)).model_copy(
        update={"status": TicketStatus.closed, "closed_at": NOW - retention - timedelta(days=1)})
    store.closed_before.return_value = [t.ticket_id for t in (old, recent, foreign)]
    store.many.return_value = [old, recent, foreign]
    monkeypatch.setattr(pipeline, "owns", lambda key: key != foreign.dedup_key)
    await sweeps.expire_closed_tickets(pipeline)
    [(key, value)] = sent["ticket_events"].calls
    event = TicketEvent.model_validate_json(value)
    assert key == old.dedup_key.encode() and (event.action, event.ticket_id) == (TicketAction.expire, old.ticket_id)
