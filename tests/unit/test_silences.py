"""Silences: Alertmanager's matcher semantics, the contract's limits, and their effect in the ticket step."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from pydantic import ValidationError

from handlers import silences, ticketing
from handlers.ticketing import Around
from handlers.lifecycle import Verdict
from schemas.enums import Category, Severity
from schemas.silences import Matcher, Silence, SilenceSpec
from tests.unit.conftest import SHANGHAI
from tests.unit.test_ticketing import make_incident

AT = datetime(2026, 12, 2, 10, 0, tzinfo=SHANGHAI)
STATION = "SW-HB-01"


def silence(*matchers: dict, mode: str = "suppress", starts: datetime = AT - timedelta(hours=1),
            ends: datetime = AT + timedelta(hours=1), created: datetime | None = None, sid: str = "s1") -> Silence:
    return Silence(silence_id=sid, matchers=[Matcher(**m) for m in matchers], starts_at=starts, ends_at=ends,
                   comment="泵站计划检修", mode=mode, created_by="值班员", created_at=created or starts)


def reading(n: int = 1, severity: Severity = Severity.orange, at: datetime = AT, station: str = STATION):
    incident = make_incident(n, severity=severity, observed_at=at - timedelta(seconds=2), received_at=at,
                             key=station)
    return incident.model_copy(update={"details": {"station_id": station}})


ON_STATION = {"name": "ref", "value": STATION}


@pytest.mark.parametrize("matcher, expected", [
    ({"name": "ref", "value": STATION}, True),
    ({"name": "ref", "value": STATION, "is_equal": False}, False),
    ({"name": "ref", "value": "SW-HB-0", "is_regex": True}, False),  # anchored: a prefix is not a match
    ({"name": "ref", "value": "SW-HB-.*", "is_regex": True}, True),
    ({"name": "ref", "value": "SW-HB-.*", "is_regex": True, "is_equal": False}, False),
    ({"name": "community", "value": "liyuan"}, True),
    ({"name": "community", "value": "haibin"}, False),
    ({"name": "department", "value": "flood_control"}, True),
    ({"name": "severity", "value": "orange|red", "is_regex": True}, True),
])
def test_matcher_semantics(matcher, expected):
    found = silences.labels(reading(), "flood_control")
    assert silences.covers(silence(matcher, {"name": "source", "value": "flood"}), found) is expected


def test_every_matcher_must_match():
    found = silences.labels(reading(), "flood_control")
    assert silences.covers(silence(ON_STATION, {"name": "community", "value": "liyuan"}), found)
    assert not silences.covers(silence(ON_STATION, {"name": "community", "value": "haibin"}), found)


def test_a_ref_matcher_takes_any_of_a_traffic_events_ids():
    event = reading().model_copy(update={"details": {"road": "望海路", "camera_id": "CAM-7"}})
    found = silences.labels(event, "traffic_police")
    assert silences.covers(silence({"name": "ref", "value": "CAM-7"}), found)
    assert not silences.covers(silence({"name": "ref", "value": "CAM-7", "is_equal": False}), found)


@pytest.mark.parametrize("change, message", [
    ({"ends_at": AT + timedelta(days=7, seconds=1)}, "a silence lasts at most 7 days"),
    ({"ends_at": AT}, "ends_at must be after starts_at"),
    ({"matchers": [{"name": "severity", "value": "blue"}]}, "a silence needs at least one matcher besides severity"),
    ({"matchers": [{"name": "ref", "value": "(", "is_regex": True}]}, "value is not a valid regular expression"),
    ({"matchers": [{"name": "station", "value": "x"}]}, "Input should be 'source', 'category'"),
    ({"mode": "mute"}, "Input should be 'suppress' or 'quiet'"),
    ({"starts_at": datetime.fromisoformat("9999-12-31T00:00:00+00:00"),
      "ends_at": datetime.fromisoformat("9999-12-31T01:00:00+00:00")}, "must be a time between the years 2000 and 2100"),
])
def test_the_limits_of_a_new_silence(change, message):
    body = {"matchers": [ON_STATION], "starts_at": AT, "ends_at": AT + timedelta(hours=2), "comment": "检修", **change}
    with pytest.raises(ValidationError, match=message.replace("(", r"\(")):
        SilenceSpec.model_validate(body)


def test_pending_active_expired_on_an_injected_clock():
    s = silence(ON_STATION, starts=AT, ends=AT + timedelta(hours=2), created=AT - timedelta(hours=1))
    assert [silences.state(s, AT + timedelta(minutes=m)) for m in (-1, 0, 119, 120)] == [
        "pending", "active", "active", "expired"]


def test_a_suppressed_incident_opens_nothing_and_its_replay_lists_it_again(config):
    s = silence(ON_STATION)
    outcome = ticketing.step(config, None, reading(), f"flood:{STATION}", Around(silences=(s,)))
    assert (outcome.verdict, outcome.tickets) == (Verdict.applied, ())
    assert outcome.counts == (ticketing.Silenced("flood"),)
    assert [(x.incident.incident_id, x.silence_id) for x in outcome.suppressed] == [(reading().incident_id, "s1")]
    # Again, with the silence gone from the table meanwhile: the key remembers the decision.
    again = ticketing.step(config, outcome.state, reading(), f"flood:{STATION}", Around(silences=()))
    assert (again.verdict, again.tickets, again.suppressed, again.state) == (
        Verdict.replayed, (), outcome.suppressed, outcome.state)


def test_an_open_ticket_still_counts_its_occurrences_under_a_silence(config):
    first = ticketing.step(config, None, reading(1, at=AT - timedelta(minutes=30)), "k", Around(silences=()))
    merged = ticketing.step(config, first.state, reading(2), "k", Around(silences=(silence(ON_STATION),)))
    assert merged.tickets[0].occurrences == 2 and merged.suppressed == ()


def test_a_red_incident_is_never_suppressed_it_opens_quietly_and_says_so(config):
    outcome = ticketing.step(config, None, reading(severity=Severity.red), "k", Around(silences=(silence(ON_STATION),)))
    [ticket] = outcome.tickets
    assert (ticket.silenced_by, ticket.quiet_until) == ("s1", AT + timedelta(hours=1))
    assert ticket.history[-1].action == "silenced" and ticket.history[-1].note.startswith("红色不屏蔽")
    assert outcome.counts == (ticketing.Opened("flood_control", Severity.red),)


def test_a_quiet_silence_opens_the_ticket_without_notifying(config):
    outcome = ticketing.step(config, None, reading(), "k", Around(silences=(silence(ON_STATION, mode="quiet"),)))
    [ticket] = outcome.tickets
    assert ticket.silenced_by == "s1" and ticket.history[-1].note == "opened quietly under silence s1"


def test_a_silence_never_reaches_back_before_it_was_made(config):
    late = silence(ON_STATION, starts=AT - timedelta(hours=1), created=AT + timedelta(seconds=1))
    assert ticketing.step(config, None, reading(), "k", Around(silences=(late,))).tickets


def test_suppress_wins_over_quiet_and_then_the_lowest_id():
    found = silences.labels(reading(), "flood_control")
    quiet, loud_b, loud_a = (silence(ON_STATION, mode="quiet", sid="a"), silence(ON_STATION, sid="c"),
                             silence(ON_STATION, sid="b"))
    assert silences.silencing((quiet, loud_b, loud_a), reading(), "flood_control").silence_id == "b"
    assert silences.covers(quiet, found)


def test_a_recurring_maintenance_window_across_midnight_in_shanghai():
    from schemas.response import Maintenance
    window = Maintenance(name="night_test", matchers=[Matcher(name="ref", value=STATION)], mode="quiet",
                         time_intervals=[{"times": [{"start_time": "23:30", "end_time": "00:30"}]}])
    at = lambda h, m: reading(at=datetime(2026, 12, 2, h, m, tzinfo=SHANGHAI))  # noqa: E731
    inside = silences.silencing((), at(0, 10), "flood_control", [window], SHANGHAI)
    assert (inside.silence_id, inside.mode) == ("maintenance:night_test", "quiet")
    assert inside.ends_at == datetime(2026, 12, 2, 0, 30, tzinfo=SHANGHAI)
    assert silences.silencing((), at(23, 45), "flood_control", [window], SHANGHAI) is not None
    assert silences.silencing((), at(0, 30), "flood_control", [window], SHANGHAI) is None
    assert silences.silencing((), at(12, 0), "flood_control", [window], SHANGHAI) is None


def test_the_real_pump_test_window_suppresses_pump_alarms_on_monday_night(config):
    monday_night = datetime(2026, 11, 30, 2, 15, tzinfo=SHANGHAI)
    pump = reading().model_copy(update={"category": Category.flood_pump_station, "subcategory": "fault",
                                        "received_at": monday_night})
    outcome = ticketing.step(config, None, pump, "k")
    assert outcome.tickets == () and outcome.suppressed[0].silence_id == "maintenance:pump_weekly_test"
    later = pump.model_copy(update={"received_at": monday_night + timedelta(hours=1)})
    assert ticketing.step(config, None, later, "k").tickets


def pump_down(config, at: datetime = AT - timedelta(minutes=30)):
    pump = reading(90, at=at, station="PS-HB-01").model_copy(update={
        "category": Category.flood_pump_station, "subcategory": "offline", "lat": 22.5297, "lon": 113.9098})
    return ticketing.step(config, None, pump, "pump").tickets[0]


def test_a_pump_station_ticket_is_an_inhibitor_and_waterlogging_near_it_opens_nothing(config):
    from handlers.silences import inhibitor_record
    source = pump_down(config)
    assert source.inhibits == ["pump_down_waterlogging"]
    around = Around(inhibitors=(inhibitor_record(source),))
    near = ticketing.step(config, None, reading(1), "k", around)  # the same coordinates
    assert near.tickets == () and near.suppressed[0].silence_id == "inhibit:pump_down_waterlogging"
    assert near.suppressed[0].source_ticket_id == source.ticket_id
    replay = ticketing.step(config, near.state, reading(1), "k", Around())
    assert replay.suppressed == near.suppressed
    far = reading(2).model_copy(update={"lat": 22.55, "lon": 113.95})  # about 3 km away
    assert ticketing.step(config, None, far, "k2", around).tickets
    assert ticketing.step(config, None, reading(3, severity=Severity.red), "k3", around).tickets  # red: never


def test_the_inhibition_lifts_when_the_source_ticket_closes(config):
    from handlers.silences import inhibitor_record
    source = pump_down(config).model_copy(update={"closed_at": AT - timedelta(minutes=1)})
    around = Around(inhibitors=(inhibitor_record(source),))
    assert ticketing.step(config, None, reading(1), "k", around).tickets
    before_close = reading(2, at=AT - timedelta(minutes=5))
    assert ticketing.step(config, None, before_close, "k2", around).tickets == ()
