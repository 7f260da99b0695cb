"""Per-device heartbeats through the ticket step, no broker: a station silent for its heartbeat's time
opens one device_offline ticket and recovers; a flapping station opens no second ticket; a retired one
is not tracked; the parse stage names the device of every reading, normal ones included."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from handlers import heartbeat, ticketing
from handlers.base import Context
from handlers.intake import parsed
from handlers.lifecycle import Verdict
from schemas.enums import Category, Severity
from tests.unit.conftest import SHANGHAI

T0 = datetime(2026, 5, 12, 9, 0, tzinfo=SHANGHAI)
KIND, STATION, PLACE = "flood.water_level", "SW-XG-01", (22.5104, 113.9695)


def offline(config, heard_at: datetime):
    return heartbeat.offline_incident(config, KIND, STATION, *PLACE, heard_at.timestamp())


def test_a_normal_reading_is_a_heartbeat_and_a_typhoon_signal_is_not(config, sample_bytes):
    incident, heard = parsed("flood", sample_bytes("flood", "water_level_normal.json"), Context(config, T0, {}))
    assert incident is None and (heard.kind, heard.device, heard.at) == (KIND, STATION, T0)
    _, signal = parsed("flood", sample_bytes("flood", "typhoon_orange.json"), Context(config, T0, {}))
    assert signal is None
    _, traffic = parsed("traffic", sample_bytes("traffic", "congestion.json"), Context(config, T0, {}))
    assert traffic is None


def test_a_silent_station_opens_one_blue_ticket_timed_by_its_silence_and_recovers(config):
    rule = config.rules.heartbeats.kinds[KIND]
    assert rule.silent_after == timedelta(minutes=30)
    incident = offline(config, T0)
    assert (incident.category, incident.severity, incident.received_at) == \
        (Category.flood_device_offline, Severity.blue, T0 + timedelta(minutes=30))
    assert offline(config, T0) == incident  # any worker, any tick: the same incident
    opened = ticketing.step(config, None, incident, incident.dedup_key)
    [ticket] = opened.tickets
    assert (ticket.department, ticket.community) == ("flood_control", "xingang")
    again = ticketing.step(config, opened.state, offline(config, T0), incident.dedup_key)
    assert again.verdict is Verdict.replayed
    back = heartbeat.recover_event(incident, (T0 + timedelta(minutes=42)).timestamp())
    recovered = ticketing.step(config, opened.state, back, incident.dedup_key)
    [after] = recovered.tickets
    assert after.ticket_id == ticket.ticket_id and after.history[-1].action == "device_recovered"
    assert after.history[-1].at == T0 + timedelta(minutes=42)
    assert ticketing.step(config, recovered.state, back, incident.dedup_key).verdict is Verdict.replayed


def test_a_flapping_station_opens_no_second_ticket_while_the_first_is_open(config):
    first = offline(config, T0)
    state = ticketing.step(config, None, first, first.dedup_key).state
    state = ticketing.step(config, state, heartbeat.recover_event(first, (T0 + timedelta(minutes=40)).timestamp()),
                           first.dedup_key).state
    second = offline(config, T0 + timedelta(minutes=41))  # on again at +40, silent again after +41
    outcome = ticketing.step(config, state, second, second.dedup_key)
    [ticket] = outcome.tickets
    assert ticket.occurrences == 2 and len(outcome.state.tickets) == 1
    # Its recovery goes to the same ticket (the one the second silence became an occurrence of).
    back = heartbeat.recover_event(second, (T0 + timedelta(minutes=80)).timestamp())
    [recovered] = ticketing.step(config, outcome.state, back, second.dedup_key).tickets
    assert recovered.ticket_id == ticket.ticket_id


def test_a_retired_or_untracked_device_is_not_watched(config):
    assert heartbeat.tracked(config, KIND, STATION) is not None
    retired = config.model_copy(update={"rules": config.rules.model_copy(update={
        "heartbeats": config.rules.heartbeats.model_copy(update={"retired": [STATION]})})})
    assert heartbeat.tracked(retired, KIND, STATION) is None
    assert heartbeat.tracked(config, "construction.noise", "CAM-1") is None  # no heartbeat configured


def test_under_level_iii_a_silent_flood_station_is_graded_one_step_up(config):
    from schemas.response import MANUAL, ResponseChange
    incident = offline(config, T0)
    level = {MANUAL: [ResponseChange(at=T0, level="III", reason="x", trigger=MANUAL, by="ops_centre")]}
    [ticket] = ticketing.step(config, None, incident, incident.dedup_key, ticketing.Around(response=level)).tickets
    assert ticket.severity is Severity.yellow and ticket.response_level == "III"
    assert incident.received_at.tzinfo is not None and incident.observed_at == incident.received_at
    assert datetime.fromisoformat(incident.details["last_heard_at"]) == T0.astimezone(timezone.utc)


# ------------------------------------------------------------------ all-clear hints

def reading(config, cm: float, at: datetime):
    raw = {"station_id": "JS-LY-05", "kind": "waterlogging", "value": cm, "lat": 22.5297, "lon": 113.9098,
           "observed_at": at.isoformat()}
    return parsed("flood", json.dumps(raw).encode(), Context(config, at, {}))


def test_a_measured_reading_says_whether_it_is_calm_and_which_key_an_alarm_raised(config):
    incident, heard = reading(config, 32, T0)
    assert (heard.calm, heard.alarm_key, heard.observed_at) == (False, incident.dedup_key, T0)
    none, calm = reading(config, 1, T0)
    assert none is None and (calm.calm, calm.alarm_key) == (True, None)


def test_an_all_clear_after_three_low_readings_spanning_its_time_and_none_after_two(config):
    incident, _ = reading(config, 32, T0)
    state = ticketing.step(config, None, incident, incident.dedup_key).state
    calm = [(T0 + timedelta(minutes=m)).timestamp() for m in (10, 20, 30)]
    kind, key, alarm_at = "flood.waterlogging", incident.dedup_key, T0.timestamp()
    assert heartbeat.all_clear_event(config, kind, key, alarm_at, calm[:2]) is None
    assert heartbeat.all_clear_event(config, kind, key, alarm_at, [calm[0], calm[0] + 60, calm[0] + 120]) is None
    event = heartbeat.all_clear_event(config, kind, key, alarm_at, calm)
    assert event == heartbeat.all_clear_event(config, kind, key, alarm_at, calm)  # the same from any tick
    [ticket] = ticketing.step(config, state, event, key).tickets
    assert ticket.status.value == "dispatched"  # a hint: nothing closes by itself
    assert ticket.source_cleared_at == T0 + timedelta(minutes=30) and ticket.history[-1].action == "source_cleared"
    cleared = ticketing.step(config, state, event, key).state
    # Alarming again: the hint goes; a late copy of an older alarm leaves it.
    late, _ = reading(config, 31, T0 + timedelta(minutes=5))
    [kept] = ticketing.step(config, cleared, late, key).tickets
    assert kept.source_cleared_at == ticket.source_cleared_at
    again, _ = reading(config, 33, T0 + timedelta(minutes=40))
    [alarming] = ticketing.step(config, cleared, again, key).tickets
    assert alarming.source_cleared_at is None
