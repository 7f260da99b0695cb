"""The Faust agents of the pipeline, each driven through `agent.test_context()` with the topic sends
recorded: parse (raw -> incident or dead letter) and decide_tickets (incident or command -> the
key's state, Redis, soc.tickets)."""
from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest

from handlers import escalation
from streams.topology import hop1

from schemas.accounts import AuditRecord
from schemas.enums import Category, Severity, TicketStatus
from schemas.records import DeadLetter, Incident, KeyState, Ticket, TicketAction, TicketEvent, Touched
from tests.stream.conftest import NOW, eventually, metric, put_on
from tests.unit.photos import AFTER

pytestmark = pytest.mark.asyncio(loop_scope="session")
RAW = "soc.raw.flood"


def flood_reading(raw, **changes) -> bytes:
    data = json.loads(raw("flood", "waterlogging_underpass"))
    data.update(changes)
    return json.dumps(data).encode()


# ------------------------------------------------------------------ parse agents

async def test_a_valid_flood_reading_becomes_an_incident(pipeline, sent, raw):
    events_before = metric(pipeline, "soc_events_total", source="flood")
    async with pipeline.agents["parse_flood"].test_context() as agent:
        await put_on(agent, RAW, raw("flood", "waterlogging_underpass"), key=b"JS-LY-05")
        [(key, value)] = await sent["incidents"].wait_for(1)
    incident = Incident.model_validate_json(value)
    assert key == incident.dedup_key.encode() == b"flood:flood_waterlogging:JS-LY-05"
    assert (incident.source.value, incident.category, incident.community) == \
        ("flood", Category.flood_waterlogging, "liyuan")
    assert incident.severity is Severity.orange  # 32 cm: orange from 30 cm (rules.yaml)
    assert incident.received_at == NOW  # the record's timestamp, not the clock at parse
    assert incident.source_ref.startswith("JS-LY-05")
    assert sent["dead_letters"].calls == []
    assert metric(pipeline, "soc_events_total", source="flood") == events_before + 1
    assert metric(pipeline, "soc_incidents_total", source="flood", category="flood_waterlogging",
                  severity=incident.severity.value) >= 1


async def test_malformed_bytes_are_dead_lettered_and_the_agent_goes_on(pipeline, sent, raw):
    rejected_before = metric(pipeline, "soc_events_rejected_total", source="flood", reason="not_json")
    async with pipeline.agents["parse_flood"].test_context() as agent:
        await put_on(agent, RAW, b'{"station_id": "JS-LY-05", "kind": ', key=b"JS-LY-05")
        await put_on(agent, RAW, raw("flood", "waterlogging_underpass"), key=b"JS-LY-05")
        [(key, value)] = await sent["dead_letters"].wait_for(1)
        [(_, incident)] = await sent["incidents"].wait_for(1)
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
    async with pipeline.agents["parse_flood"].test_context() as agent:
        await put_on(agent, RAW, bad_signal, key=b"QX-HW")
        await put_on(agent, RAW, not_utf8, key=b"QX-HW")
        await agent.put(None, key=b"QX-HW")  # a tombstone on a raw topic
        await put_on(agent, RAW, raw("flood", "waterlogging_underpass"), key=b"JS-LY-05")
        letters = [DeadLetter.model_validate_json(v) for _, v in await sent["dead_letters"].wait_for(3)]
        await sent["incidents"].wait_for(1)
    unknown, binary, empty = letters
    assert unknown.error_type == "unknown_value" and unknown.offset == 0
    assert [e.loc for e in unknown.field_errors] and json.loads(unknown.raw_text) == json.loads(bad_signal)
    assert binary.error_type == "not_utf8" and binary.raw_text is None
    assert base64.b64decode(binary.raw_base64) == not_utf8 and binary.offset == 1
    assert empty.error_type == "not_object" and (empty.raw_text, empty.raw_base64, empty.raw_size) == (None, None, 0)


async def test_a_handler_bug_is_dead_lettered_not_fatal(pipeline, sent, raw, monkeypatch):
    real = hop1.parsed

    def flaky(source, value, ctx):
        if b"boom" in value:
            raise ZeroDivisionError("division by zero")
        return real(source, value, ctx)

    monkeypatch.setattr(hop1, "parsed", flaky)
    async with pipeline.agents["parse_flood"].test_context() as agent:
        await put_on(agent, RAW, b'{"boom": 1}')
        await put_on(agent, RAW, raw("flood", "waterlogging_underpass"))
        [(_, value)] = await sent["dead_letters"].wait_for(1)
        await sent["incidents"].wait_for(1)
    letter = DeadLetter.model_validate_json(value)
    assert (letter.error_type, letter.message) == ("handler_error", "ZeroDivisionError: division by zero")


async def test_a_normal_reading_sends_nothing(pipeline, sent, raw):
    async with pipeline.agents["parse_flood"].test_context() as agent:
        await put_on(agent, RAW, raw("flood", "water_level_normal"))
        await put_on(agent, RAW, raw("flood", "waterlogging_underpass"))
        await sent["incidents"].wait_for(1)
    [(key, _)] = sent["incidents"].calls
    assert key == b"flood:flood_waterlogging:JS-LY-05"
    assert sent["dead_letters"].calls == []
    # Both readings are heartbeats of their stations.
    assert {(h.kind, h.device) for call in pipeline.store.record_heard.call_args_list for h in call.args[0]} >= \
        {("flood.water_level", "SW-XG-01"), ("flood.waterlogging", "JS-LY-05")}


async def test_a_redis_failure_on_heartbeats_does_not_stop_parsing(pipeline, sent, raw, store):
    from redis.exceptions import ConnectionError as RedisConnectionError
    store.record_heard.side_effect = RedisConnectionError("redis down")
    async with pipeline.agents["parse_flood"].test_context() as agent:
        await put_on(agent, RAW, raw("flood", "waterlogging_underpass"))
        await sent["incidents"].wait_for(1)
        await put_on(agent, RAW, raw("flood", "pump_fault"))
        await sent["incidents"].wait_for(2)
    # Tried once; the next batches go without heartbeats for a while instead of waiting on Redis.
    assert store.record_heard.call_count == 1


async def test_every_source_has_a_parse_agent(pipeline, sent, raw):
    samples = {"traffic": "accident_injury", "city": "hotline_manhole", "flood": "typhoon_orange"}
    assert {a for a in pipeline.agents if a.startswith("parse_")} == \
        {"parse_traffic", "parse_flood", "parse_city", "parse_construction"}
    for n, (source, name) in enumerate(samples.items(), start=1):
        async with pipeline.agents[f"parse_{source}"].test_context() as agent:
            await put_on(agent, f"soc.raw.{source}", raw(source, name))
            [*_, (_, value)] = await sent["incidents"].wait_for(n)
        assert Incident.model_validate_json(value).source.value == source




# ------------------------------------------------------------------ decide_tickets

def incident(n: int, observed_minutes_ago: float, station: str) -> Incident:
    observed = NOW - timedelta(minutes=observed_minutes_ago)
    return Incident(
        incident_id=f"floo-stream-{station}-{n}", source="flood", category=Category.flood_waterlogging,
        subcategory="waterlogging", severity=Severity.orange, title="积水", lat=22.5297, lon=113.9098,
        community="liyuan", observed_at=observed, received_at=NOW,
        dedup_key=f"flood:flood_waterlogging:{station}", source_ref=f"{station}@{observed.isoformat()}")


def command(ticket: Ticket, n: int, action: TicketAction, actor: str, **fields) -> TicketEvent:
    return TicketEvent(event_id=f"api-{ticket.ticket_id}-{n}", ticket_id=ticket.ticket_id, action=action,
                       by="Officer Chen", actor=actor, at=NOW, **fields)


async def decide(pipeline, *items: Incident | tuple[TicketEvent, str]) -> None:
    """Incidents on soc.incidents, (command, dedup key) pairs on soc.ticket-events."""
    async with pipeline.agents["decide_tickets"].test_context() as agent:
        for item in items:
            if isinstance(item, Incident):
                await put_on(agent, "soc.incidents", item.model_dump_json().encode(), key=item.dedup_key.encode())
            else:
                event, key = item
                await put_on(agent, "soc.ticket-events", event.model_dump_json().encode(), key=key.encode())


def state(pipeline, key: str) -> KeyState:
    return KeyState.model_validate_json(pipeline.dedup_key_to_tickets[key])


def published(sent) -> list[Ticket]:
    return [Ticket.model_validate_json(v) for _, v in sent["tickets"].calls]


async def test_same_dedup_key_opens_once_then_counts_an_occurrence(pipeline, sent, store):
    first, second = incident(1, 20, "ST-A"), incident(2, 10, "ST-A")
    await decide(pipeline, first, second)
    await eventually(lambda: pipeline.dedup_key_to_tickets.get(first.dedup_key) is not None, "the table write")
    held = state(pipeline, first.dedup_key)
    [ticket] = held.tickets.values()
    assert (ticket.occurrences, ticket.department, ticket.dispatched_at) == (2, "flood_control", NOW)
    touched = Touched(tickets=[ticket.ticket_id])
    assert held.recent == {first.incident_id: touched, second.incident_id: touched}
    # The agent hands the step each incident's offset: one partition's mark, one run up to it.
    [(partition, mark)] = held.marks.items()
    assert [(r.partition, r.last, r.effect) for r in held.runs] == [(partition, mark, touched)]
    assert [s.ticket_id for s in held.seen] == [ticket.ticket_id]
    # Each ticket goes to Redis and soc.tickets keyed by its id, the last version last.
    assert published(sent)[-1] == ticket and sent["tickets"].calls[-1][0] == ticket.ticket_id.encode()
    # Nothing but the new ticket's sightings on its correlation cells (the waterlogging rule's 2 x 2).
    assert {c[0].split(b":")[1].decode() for c in sent["ticket_events"].calls} == {"积水致拥堵"}
    assert len(sent["ticket_events"].calls) == 4


async def test_after_the_window_a_new_ticket_points_back(pipeline, sent, store):
    # The flood window is 3 h: readings 4 h apart are two tickets.
    early, late = incident(1, 300, "ST-B"), incident(2, 60, "ST-B")
    await decide(pipeline, early, late)
    await eventually(lambda: len(published(sent)) >= 2, "two tickets")
    first, second = sorted(state(pipeline, early.dedup_key).tickets.values(), key=lambda t: t.observed_at)
    assert second.previous_ticket_id == first.ticket_id != second.ticket_id


async def test_a_replayed_incident_writes_the_ticket_as_it_stands_and_counts_nothing(pipeline, sent, store):
    first, second = incident(1, 20, "ST-R"), incident(2, 10, "ST-R")
    opened = metric(pipeline, "soc_tickets_opened_total", department="flood_control", severity="orange")
    await decide(pipeline, first, second, first, second)
    await eventually(lambda: len(published(sent)) >= 1 and published(sent)[-1].occurrences == 2, "the ticket")
    [ticket] = state(pipeline, first.dedup_key).tickets.values()
    assert ticket.occurrences == 2
    # However the inputs were batched, every write of the final version is the same bytes.
    final = [v for _, v in sent["tickets"].calls if Ticket.model_validate_json(v).version == ticket.version]
    assert set(final) == {ticket.model_dump_json().encode()}
    assert metric(pipeline, "soc_tickets_opened_total", department="flood_control", severity="orange") == opened + 1


async def test_commands_change_the_ticket_and_a_refused_one_is_recorded_for_the_api(pipeline, sent, store):
    first = incident(1, 5, "ST-E")
    await decide(pipeline, first)
    await eventually(lambda: pipeline.dedup_key_to_tickets.get(first.dedup_key) is not None, "the table write")
    [ticket] = state(pipeline, first.dedup_key).tickets.values()
    accept = command(ticket, 1, TicketAction.accept, "flood_control")
    not_allowed = command(ticket, 2, TicketAction.verify, "flood_control", passed=True)
    await decide(pipeline, (accept, first.dedup_key), (not_allowed, first.dedup_key))
    await eventually(lambda: store.record_result.await_count == 1, "the refusal to be recorded")
    assert state(pipeline, first.dedup_key).tickets[ticket.ticket_id].status is TicketStatus.accepted
    assert [(t.status, t.version) for t in published(sent)] == [(TicketStatus.dispatched, 1), (TicketStatus.accepted, 2)]
    kinds = [write[1] for call in store.save_with_retry.await_args_list for write in call.args[0]]
    assert kinds == ["incident", "accept"]
    store.record_result.assert_awaited_once_with(
        not_allowed.event_id, "a department cannot verify its own work; the operations centre verifies")


async def test_a_report_after_closure_opens_a_successor_in_the_same_step(pipeline, sent, store):
    first = incident(1, 30, "ST-F")
    await decide(pipeline, first)
    await eventually(lambda: pipeline.dedup_key_to_tickets.get(first.dedup_key) is not None, "the table write")
    [ticket] = state(pipeline, first.dedup_key).tickets.values()
    closing = [command(ticket, 1, TicketAction.accept, "flood_control"),
               command(ticket, 2, TicketAction.evidence, "flood_control", photo=AFTER),  # waterlogging needs one
               command(ticket, 3, TicketAction.resolve, "flood_control", note="pumped dry"),
               command(ticket, 4, TicketAction.verify, "ops_centre", passed=True)]
    again = incident(2, 1, "ST-F")
    await decide(pipeline, *[(c, first.dedup_key) for c in closing], again)
    await eventually(lambda: len(state(pipeline, first.dedup_key).tickets) == 2, "the successor")
    tickets = state(pipeline, first.dedup_key).tickets
    closed, successor = tickets[ticket.ticket_id], next(t for t in tickets.values() if t.ticket_id != ticket.ticket_id)
    assert closed.status is TicketStatus.closed and closed.successor_ticket_id == successor.ticket_id
    assert successor.previous_ticket_id == ticket.ticket_id and successor.status is TicketStatus.dispatched
    # No follow-up commands (one step did it): the successor's sightings only.
    assert all(c[0].startswith(b"corr:") for c in sent["ticket_events"].calls)
    store.record_result.assert_not_awaited()


async def test_bad_input_on_the_ticket_topics_is_dead_lettered_and_the_agent_goes_on(pipeline, sent, store):
    good = incident(1, 5, "ST-G")
    async with pipeline.agents["decide_tickets"].test_context() as agent:
        await put_on(agent, "soc.ticket-events", b'{"event_id": 1}', key=b"k")
        await put_on(agent, "soc.incidents", good.model_dump_json().encode(), key=good.dedup_key.encode())
    [(key, value)] = await sent["dead_letters"].wait_for(1)
    letter = DeadLetter.model_validate_json(value)
    assert key == b"soc.ticket-events" and letter.error_type == "invalid"
    await eventually(lambda: pipeline.dedup_key_to_tickets.get(good.dedup_key) is not None, "the next input")


async def test_a_command_for_an_unknown_ticket_is_refused_and_recorded(pipeline, sent, store):
    ghost = TicketEvent(event_id="api-ghost", ticket_id="T-none", action=TicketAction.accept, by="x",
                        actor="flood_control", at=NOW)
    await decide(pipeline, (ghost, "flood:flood_waterlogging:nowhere"))
    await eventually(lambda: store.record_result.await_count == 1, "the refusal")
    store.record_result.assert_awaited_once_with("api-ghost", "unknown ticket T-none")
    assert pipeline.dedup_key_to_tickets.get("flood:flood_waterlogging:nowhere") is None


async def test_the_web_server_listens_where_the_settings_say_not_on_every_interface(pipeline):
    # Faust's web_bind defaults to 0.0.0.0; the documented default is 127.0.0.1 (SOC_WEB_HOST).
    assert pipeline.app.conf.web_bind == pipeline.settings.web_host == "127.0.0.1"


async def test_a_ticket_whose_dates_overflow_is_dead_lettered_and_the_partition_goes_on(pipeline, sent, store,
                                                                                      monkeypatch):
    real = escalation.next_due

    def overflowing(config, ticket):  # as a deadline near the year 9999 makes the ladder overflow
        if ticket.dedup_key.endswith("ST-OVERFLOW"):
            raise OverflowError("date value out of range")
        return real(config, ticket)

    monkeypatch.setattr(escalation, "next_due", overflowing)
    bad, good = incident(1, 5, "ST-OVERFLOW"), incident(1, 5, "ST-AFTER")
    await decide(pipeline, bad, good)
    [(_, value)] = await sent["dead_letters"].wait_for(1)
    letter = DeadLetter.model_validate_json(value)
    assert letter.error_type == "handler_error" and "OverflowError" in letter.message
    await eventually(lambda: pipeline.dedup_key_to_tickets.get(good.dedup_key) is not None, "the next input")
    assert pipeline.dedup_key_to_tickets.get(bad.dedup_key) is None  # not applied: no half-written state


async def test_the_audit_trail_is_recorded_as_sent_and_a_bad_record_is_dead_lettered(pipeline, sent, store):
    good = AuditRecord(audit_id="a1", at=NOW, kind="sign_in", user_id="duty", what="sign_in").model_dump_json()
    async with pipeline.agents["record_audit"].test_context() as agent:
        await put_on(agent, "soc.audit", b"not json", key=b"duty")
        await put_on(agent, "soc.audit", good.encode(), key=b"duty")
    [(key, value)] = await sent["dead_letters"].wait_for(1)
    assert key == b"soc.audit" and DeadLetter.model_validate_json(value).error_type == "invalid"
    await eventually(lambda: store.redis.zadd.await_count == 1, "the good record in Redis")
    # The member is the record's own bytes: a replay adds the same member, not a second one.
    assert store.redis.zadd.await_args.args[1] == {good.encode(): NOW.timestamp()}
