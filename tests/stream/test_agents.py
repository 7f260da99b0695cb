"""The Faust agents of streams.app, each driven through `agent.test_context()` with the topic sends
recorded: parse (raw -> incident or dead letter), triage (incident -> open / occurrence) and
apply (ticket event -> ticket)."""
from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest

from handlers.triage import triage
from schemas.enums import Category, Severity, TicketStatus
from schemas.records import DeadLetter, Incident, Ticket, TicketAction, TicketEvent
from tests.stream.conftest import NOW, eventually, metric

pytestmark = pytest.mark.asyncio(loop_scope="session")


def flood_reading(raw, **changes) -> bytes:
    data = json.loads(raw("flood", "waterlogging_underpass"))
    data.update(changes)
    return json.dumps(data).encode()


# ------------------------------------------------------------------ parse agents

async def test_a_valid_flood_reading_becomes_an_incident(pipeline, sent, raw):
    events_before = metric(pipeline, "soc_events_total", source="flood")
    async with pipeline.parse_agents["flood"].test_context() as agent:
        await agent.put(raw("flood", "waterlogging_underpass"), key=b"JS-LY-05")
        [(key, value)] = await sent["incident_topic"].wait_for(1)
    incident = Incident.model_validate_json(value)
    assert key == incident.dedup_key.encode() == b"flood:flood_waterlogging:JS-LY-05"
    assert (incident.source.value, incident.category, incident.community) == \
        ("flood", Category.flood_waterlogging, "liyuan")
    assert incident.severity is Severity.orange  # 32 cm: orange from 30 cm (rules.yaml)
    assert incident.received_at == NOW  # from the app's clock
    assert incident.source_ref.startswith("JS-LY-05")
    assert sent["deadletter_topic"].calls == []
    assert metric(pipeline, "soc_events_total", source="flood") == events_before + 1
    assert metric(pipeline, "soc_incidents_total", source="flood", category="flood_waterlogging",
                  severity=incident.severity.value) >= 1


async def test_malformed_bytes_are_dead_lettered_and_the_agent_goes_on(pipeline, sent, raw):
    rejected_before = metric(pipeline, "soc_events_rejected_total", source="flood", reason="not_json")
    async with pipeline.parse_agents["flood"].test_context() as agent:
        await agent.put(b'{"station_id": "JS-LY-05", "kind": ', key=b"JS-LY-05")
        await agent.put(raw("flood", "waterlogging_underpass"), key=b"JS-LY-05")
        [(key, value)] = await sent["deadletter_topic"].wait_for(1)
        [(_, incident)] = await sent["incident_topic"].wait_for(1)
    letter = DeadLetter.model_validate_json(value)
    assert key == b"soc.raw.flood"
    assert (letter.source_topic, letter.partition, letter.offset) == ("soc.raw.flood", 0, 0)
    assert letter.error_type == "not_json" and letter.message
    assert letter.raw_text == '{"station_id": "JS-LY-05", "kind": '
    assert letter.raw_size == 35 and letter.received_at == NOW
    # The next message on the partition was processed normally.
    assert Incident.model_validate_json(incident).category is Category.flood_waterlogging
    assert metric(pipeline, "soc_events_rejected_total", source="flood", reason="not_json") == rejected_before + 1


async def test_dead_letters_carry_field_errors_and_binary_values(pipeline, sent, raw):
    bad_signal = raw("malformed", "flood_unknown_signal")
    not_utf8 = "积水".encode("gbk")
    async with pipeline.parse_agents["flood"].test_context() as agent:
        await agent.put(bad_signal, key=b"QX-HW")
        await agent.put(not_utf8, key=b"QX-HW")
        await agent.put(None, key=b"QX-HW")  # a tombstone on a raw topic
        await agent.put(raw("flood", "waterlogging_underpass"), key=b"JS-LY-05")
        letters = [DeadLetter.model_validate_json(v) for _, v in await sent["deadletter_topic"].wait_for(3)]
        await sent["incident_topic"].wait_for(1)
    unknown, binary, empty = letters
    assert unknown.error_type == "unknown_value" and unknown.offset == 0
    assert [e.loc for e in unknown.field_errors] and unknown.raw_text == bad_signal.decode()
    assert binary.error_type == "not_utf8" and binary.raw_text is None
    assert base64.b64decode(binary.raw_base64) == not_utf8 and binary.offset == 1
    assert empty.error_type == "not_object" and (empty.raw_text, empty.raw_base64, empty.raw_size) == (None, None, 0)


async def test_a_handler_bug_is_dead_lettered_not_fatal(pipeline, sent, raw, monkeypatch):
    real = pipeline.to_incident

    def flaky(source, value, ctx):
        if b"boom" in value:
            raise ZeroDivisionError("division by zero")
        return real(source, value, ctx)

    monkeypatch.setattr(pipeline, "to_incident", flaky)
    async with pipeline.parse_agents["flood"].test_context() as agent:
        await agent.put(b'{"boom": 1}')
        await agent.put(raw("flood", "waterlogging_underpass"))
        [(_, value)] = await sent["deadletter_topic"].wait_for(1)
        await sent["incident_topic"].wait_for(1)
    letter = DeadLetter.model_validate_json(value)
    assert (letter.error_type, letter.message) == ("handler_error", "ZeroDivisionError: division by zero")


async def test_a_normal_reading_sends_nothing(pipeline, sent, raw):
    async with pipeline.parse_agents["flood"].test_context() as agent:
        await agent.put(raw("flood", "water_level_normal"))
        await agent.put(raw("flood", "waterlogging_underpass"))
        await sent["incident_topic"].wait_for(1)
    [(key, _)] = sent["incident_topic"].calls
    assert key == b"flood:flood_waterlogging:JS-LY-05"
    assert sent["deadletter_topic"].calls == []


async def test_every_source_has_a_parse_agent(pipeline, sent, raw):
    samples = {"traffic": "accident_injury", "city": "hotline_manhole", "flood": "typhoon_orange"}
    assert set(pipeline.parse_agents) == {"traffic", "flood", "city", "construction"}
    for n, (source, name) in enumerate(samples.items(), start=1):
        async with pipeline.parse_agents[source].test_context() as agent:
            await agent.put(raw(source, name))
            [*_, (_, value)] = await sent["incident_topic"].wait_for(n)
        assert Incident.model_validate_json(value).source.value == source


# ------------------------------------------------------------------ triage agent

def incident(n: int, observed_minutes_ago: float, station: str) -> Incident:
    observed = NOW - timedelta(minutes=observed_minutes_ago)
    return Incident(
        incident_id=f"floo-stream-{station}-{n}", source="flood", category=Category.flood_waterlogging,
        subcategory="waterlogging", severity=Severity.orange, title="积水", lat=22.5297, lon=113.9098,
        community="liyuan", observed_at=observed, received_at=NOW,
        dedup_key=f"flood:flood_waterlogging:{station}", source_ref=f"{station}@{observed.isoformat()}")


async def put_incidents(pipeline, *incidents: Incident) -> None:
    async with pipeline.triage_incidents.test_context() as agent:
        for i in incidents:
            await agent.put(i.model_dump_json().encode(), key=i.dedup_key.encode())


async def test_same_dedup_key_opens_once_then_counts_an_occurrence(pipeline, sent):
    first, second = incident(1, 20, "ST-A"), incident(2, 10, "ST-A")
    await put_incidents(pipeline, first, second)
    calls = await sent["ticket_event_topic"].wait_for(2)
    opened, repeated = (TicketEvent.model_validate_json(v) for _, v in calls)
    assert (opened.action, repeated.action) == (TicketAction.open, TicketAction.occurrence)
    assert [k for k, _ in calls] == [opened.ticket_id.encode()] * 2
    assert repeated.ticket_id == opened.ticket_id == opened.ticket.ticket_id
    assert (opened.event_id, repeated.event_id) == (f"open-{first.incident_id}", f"occ-{second.incident_id}")
    assert opened.ticket.department == "flood_control" and repeated.incident == second
    [seen] = json.loads(pipeline.dedup_key_to_ticket[first.dedup_key])["tickets"]
    assert seen["ticket_id"] == opened.ticket_id
    assert seen["last_seen_at"] == second.observed_at.isoformat()


async def test_after_the_window_a_new_ticket_points_back(pipeline, sent):
    # The flood window is 3 h: readings 4 h apart are two tickets.
    early, late = incident(1, 300, "ST-B"), incident(2, 60, "ST-B")
    await put_incidents(pipeline, early, late)
    first, second = (TicketEvent.model_validate_json(v) for _, v in await sent["ticket_event_topic"].wait_for(2))
    assert first.action is second.action is TicketAction.open
    assert second.ticket.previous_ticket_id == first.ticket_id != second.ticket_id


async def test_different_keys_open_separate_tickets(pipeline, sent):
    await put_incidents(pipeline, incident(1, 5, "ST-C"), incident(1, 5, "ST-D"))
    events = [TicketEvent.model_validate_json(v) for _, v in await sent["ticket_event_topic"].wait_for(2)]
    assert [e.action for e in events] == [TicketAction.open] * 2
    assert events[0].ticket_id != events[1].ticket_id


# ------------------------------------------------------------------ ticket events agent

def opening_for(pipeline, i: Incident) -> TicketEvent:
    return triage(pipeline.config, None, i, NOW).event


async def test_ticket_events_update_the_table_the_store_and_the_ticket_topic(pipeline, sent, store):
    opening = opening_for(pipeline, incident(1, 5, "ST-E"))
    accept = TicketEvent(event_id="api-1", ticket_id=opening.ticket_id, action=TicketAction.accept,
                         by="Officer Chen", actor="flood_control", at=NOW)
    not_allowed = TicketEvent(event_id="api-2", ticket_id=opening.ticket_id, action=TicketAction.verify,
                              by="Officer Chen", actor="flood_control", at=NOW, passed=True)
    async with pipeline.apply_ticket_events.test_context() as agent:
        for ev in (opening, accept, not_allowed):
            await agent.put(ev.model_dump_json().encode(), key=ev.ticket_id.encode())
        await sent["ticket_topic"].wait_for(2)
        await eventually(lambda: store.record_result.await_count == 1, "the rejection to be recorded")
    published = [Ticket.model_validate_json(v) for _, v in sent["ticket_topic"].calls]
    assert [(t.status, t.version) for t in published] == [(TicketStatus.dispatched, 1), (TicketStatus.accepted, 2)]
    assert Ticket.model_validate_json(pipeline.ticket_id_to_ticket[opening.ticket_id]).status is TicketStatus.accepted
    # Writes come in batches (one Redis round trip per batch): the kinds in order, however batched.
    assert [write[1] for call in store.save_with_retry.await_args_list for write in call.args[0]] == ["open", "accept"]
    store.record_result.assert_awaited_once_with(
        "api-2", "a department cannot verify its own work; the operations centre verifies")
    assert sent["ticket_event_topic"].calls == []


async def test_an_occurrence_on_a_closed_ticket_sends_the_successor_opening(pipeline, sent, store):
    first = incident(1, 30, "ST-F")
    opening = opening_for(pipeline, first)
    ticket_id = opening.ticket_id
    steps = [opening]
    for n, (action, actor, extra) in enumerate([
            (TicketAction.accept, "flood_control", {}),
            (TicketAction.resolve, "flood_control", {"note": "pumped dry"}),
            (TicketAction.verify, "ops_centre", {"passed": True})]):
        steps.append(TicketEvent(event_id=f"close-{n}", ticket_id=ticket_id, action=action, by=actor,
                                 actor=actor, at=NOW, **extra))
    again = incident(2, 1, "ST-F")
    steps.append(TicketEvent(event_id=f"occ-{again.incident_id}", ticket_id=ticket_id,
                             action=TicketAction.occurrence, by="pipeline", actor="pipeline", at=NOW, incident=again))
    async with pipeline.apply_ticket_events.test_context() as agent:
        for ev in steps:
            await agent.put(ev.model_dump_json().encode(), key=ev.ticket_id.encode())
        [(key, value)] = await sent["ticket_event_topic"].wait_for(1)
    follow_up = TicketEvent.model_validate_json(value)
    assert follow_up.action is TicketAction.open and key == follow_up.ticket_id.encode()
    assert follow_up.ticket.previous_ticket_id == ticket_id
    assert Ticket.model_validate_json(pipeline.ticket_id_to_ticket[ticket_id]).successor_ticket_id == follow_up.ticket_id
    store.record_result.assert_not_awaited()  # pipeline events are not API calls
