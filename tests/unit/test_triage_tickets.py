"""Triage (dedup -> route -> open or occurrence) and opening tickets, on incidents built directly."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest

from handlers.dedup import DedupEntry, Seen, latest
from handlers.routing import route
from handlers.tickets import MAX_OCCURRENCE_ENTRIES, PIPELINE, add_occurrence, open_ticket, ticket_id_for
from handlers.triage import triage
from schemas.enums import OPS_CENTRE, Category, Severity, Source, TicketStatus
from schemas.records import Incident, TicketAction
from tests.unit.conftest import NOW, SHANGHAI


def make_incident(n: int = 1, *, source: Source = Source.flood, category: Category = Category.flood_waterlogging,
                  severity: Severity = Severity.orange, observed_at: datetime | None = None,
                  community: str | None = "liyuan", key: str = "JS-LY-05") -> Incident:
    observed = observed_at or NOW - timedelta(minutes=20)
    return Incident(
        incident_id=f"{source.value[:4]}-{n:016x}", source=source, category=category, subcategory="underpass",
        severity=severity, title=f"report {n}", lat=22.5297, lon=113.9098, community=community,
        observed_at=observed, received_at=observed + timedelta(seconds=2),
        dedup_key=f"{source.value}:{category.value}:{key}", source_ref=f"{key}@{observed.isoformat()}")


def ticket_for(config, incident: Incident, now: datetime = NOW):
    return open_ticket(config, incident, route(config, incident.category, incident.severity, incident.community), now)


# ------------------------------------------------------------------ ticket ids

def test_ticket_ids_are_deterministic(config):
    first = make_incident(1)
    assert ticket_id_for(first) == ticket_id_for(first.model_copy())
    assert ticket_for(config, first).ticket_id == ticket_for(config, first, NOW + timedelta(hours=1)).ticket_id
    assert re.fullmatch(r"T20260512-[0-9a-f]{8}", ticket_id_for(first))
    assert ticket_id_for(make_incident(2)) != ticket_id_for(first)


def test_ticket_id_date_is_the_observation_date(config):
    # Observed on the 11th at 23:50 local, dispatched after midnight.
    late = make_incident(3, observed_at=datetime(2026, 5, 11, 23, 50, tzinfo=SHANGHAI))
    assert ticket_for(config, late).ticket_id.startswith("T20260511-")


def test_triage_of_a_replayed_incident_opens_the_same_ticket(config):
    incident = make_incident(1)
    a = triage(config, None, incident, NOW)
    b = triage(config, None, incident, NOW + timedelta(seconds=30))
    assert a.event.ticket_id == b.event.ticket_id and a.event.event_id == b.event.event_id


# ------------------------------------------------------------------ open_ticket

def test_open_ticket_fields(config):
    incident = make_incident(1)
    t = ticket_for(config, incident)
    assert (t.ticket_id, t.incident_id, t.dedup_key, t.source_ref) == \
        (ticket_id_for(incident), incident.incident_id, incident.dedup_key, incident.source_ref)
    assert (t.department, t.watchers, t.out_of_jurisdiction) == ("flood_control", [], False)
    assert (t.status, t.occurrences, t.incident_ids, t.version, t.reworks, t.returns) == \
        (TicketStatus.dispatched, 1, [incident.incident_id], 1, 0, 0)
    assert (t.dispatched_at, t.observed_at, t.last_seen_at, t.received_at) == \
        (NOW, incident.observed_at, incident.observed_at, incident.received_at)
    assert (t.accepted_at, t.resolved_at, t.closed_at, t.extension, t.previous_ticket_id) == (None,) * 5
    [entry] = t.history
    assert (entry.at, entry.by, entry.action, entry.note) == (NOW, PIPELINE, "dispatch", "flood_control")


@pytest.mark.parametrize("category, severity, accept, resolve", [
    # routing.yaml defaults
    (Category.traffic_accident, Severity.red, timedelta(minutes=10), timedelta(hours=2)),
    (Category.traffic_accident, Severity.orange, timedelta(minutes=30), timedelta(hours=8)),
    (Category.traffic_accident, Severity.yellow, timedelta(hours=2), timedelta(hours=24)),
    # category_deadlines overrides
    (Category.flood_waterlogging, Severity.red, timedelta(minutes=5), timedelta(hours=1)),
    (Category.flood_waterlogging, Severity.orange, timedelta(minutes=15), timedelta(hours=3)),
    (Category.city_manhole, Severity.red, timedelta(minutes=5), timedelta(hours=1)),
    # not overridden for this severity: the default applies
    (Category.flood_waterlogging, Severity.yellow, timedelta(hours=2), timedelta(hours=24)),
])
def test_open_ticket_wall_clock_deadlines(config, category, severity, accept, resolve):
    t = ticket_for(config, make_incident(category=category, severity=severity))
    assert (t.accept_due - NOW, t.resolve_due - NOW) == (accept, resolve)


def test_blue_accept_deadline_counts_working_hours(config):
    # Blue: accept 4 working hours, resolve 5 days. Tuesday 09:30: 2.5 h until 12:00, then 1.5 h
    # from 14:00 -> 15:30. The resolve deadline is plain time.
    t = ticket_for(config, make_incident(category=Category.traffic_violation, severity=Severity.blue))
    assert t.accept_due == datetime(2026, 5, 12, 15, 30, tzinfo=SHANGHAI)
    assert t.resolve_due == NOW + timedelta(days=5)


def test_blue_ticket_on_friday_evening_is_due_monday(config):
    # Friday 15 May 17:00: 1 h until 18:00, the weekend does not count, 3 h from Monday 08:30 -> 11:30.
    friday = datetime(2026, 5, 15, 17, 0, tzinfo=SHANGHAI)
    t = ticket_for(config, make_incident(category=Category.traffic_violation, severity=Severity.blue), friday)
    assert t.accept_due == datetime(2026, 5, 18, 11, 30, tzinfo=SHANGHAI)


def test_blue_sanitation_override_in_working_hours(config):
    # city_sanitation blue: accept 2 wh, resolve 8 wh. Tuesday 09:30 -> accept 11:30;
    # resolve: 2.5 h + 4 h on Tuesday, 1.5 h on Wednesday from 08:30 -> 10:00.
    t = ticket_for(config, make_incident(source=Source.city, category=Category.city_sanitation,
                                         severity=Severity.blue, community="haibin"))
    assert t.department == "ws_haibin"
    assert (t.accept_due, t.resolve_due) == (datetime(2026, 5, 12, 11, 30, tzinfo=SHANGHAI),
                                             datetime(2026, 5, 13, 10, 0, tzinfo=SHANGHAI))


def test_deadlines_count_from_dispatch_not_observation(config):
    incident = make_incident(observed_at=NOW - timedelta(hours=2), severity=Severity.red)
    t = ticket_for(config, incident, NOW)
    assert t.accept_due == NOW + timedelta(minutes=5)


def test_red_ticket_is_watched_by_the_centre(config):
    t = ticket_for(config, make_incident(severity=Severity.red))
    assert t.watchers == [OPS_CENTRE] and t.inboxes == ["flood_control", OPS_CENTRE]


def test_out_of_jurisdiction_goes_to_the_centre_with_a_note(config):
    t = ticket_for(config, make_incident(community=None, severity=Severity.red))
    assert (t.department, t.out_of_jurisdiction, t.watchers) == (OPS_CENTRE, True, [])
    assert "out of jurisdiction" in t.history[0].note


def test_add_occurrence_keeps_the_latest_observation(config):
    t = ticket_for(config, make_incident(1))
    earlier = make_incident(2, observed_at=t.observed_at - timedelta(minutes=10))
    later = add_occurrence(t, earlier, NOW)
    assert later.last_seen_at == t.last_seen_at and later.occurrences == 2
    assert add_occurrence(later, earlier, NOW) is None


def test_history_keeps_the_latest_occurrence_entries_and_every_other_entry(config):
    t = ticket_for(config, make_incident(1))
    for n in range(2, 2 + MAX_OCCURRENCE_ENTRIES + 5):
        t = add_occurrence(t, make_incident(n), NOW + timedelta(seconds=n))
    assert t.occurrences == 1 + MAX_OCCURRENCE_ENTRIES + 5  # the opening report and 25 more
    occurrence_notes = [h.note for h in t.history if h.action == "occurrence"]
    assert occurrence_notes == [make_incident(n).incident_id for n in range(7, 2 + MAX_OCCURRENCE_ENTRIES + 5)]
    assert t.history[0].action == "dispatch"


# ------------------------------------------------------------------ triage and the dedup window

def entry_for(ticket_id: str, last_seen: datetime) -> DedupEntry:
    return DedupEntry(tickets=(Seen(ticket_id=ticket_id, opened_at=last_seen, first_seen_at=last_seen,
                                    last_seen_at=last_seen),))


def test_first_incident_opens(config):
    incident = make_incident(1)
    result = triage(config, None, incident, NOW)
    ev = result.event
    assert (ev.action, ev.event_id, ev.by, ev.actor, ev.at) == \
        (TicketAction.open, f"open-{incident.incident_id}", PIPELINE, PIPELINE, NOW)
    assert ev.ticket == ticket_for(config, incident) and ev.incident == incident
    assert ev.ticket.previous_ticket_id is None
    assert result.entry == DedupEntry(tickets=(Seen(ticket_id=ev.ticket_id, opened_at=NOW,
                                                    first_seen_at=incident.observed_at,
                                                    last_seen_at=incident.observed_at),))


@pytest.mark.parametrize("source, category, window", [
    (Source.flood, Category.flood_waterlogging, timedelta(hours=3)),
    (Source.traffic, Category.traffic_accident, timedelta(minutes=30)),
    (Source.city, Category.city_road_damage, timedelta(days=1)),
    (Source.construction, Category.site_dust, timedelta(hours=4)),
])
@pytest.mark.parametrize("offset, repeat", [
    (timedelta(0), True),
    ("window - 1s", True),
    ("window", True),                  # inclusive
    ("window + 1s", False),
    ("-window", True),                 # a late reading inside the window belongs to the ticket
    ("-window - 1s", False),           # one from long before is another problem
])
def test_window_boundaries(config, source, category, window, offset, repeat):
    last_seen = NOW - timedelta(days=2)
    delta = {"window - 1s": window - timedelta(seconds=1), "window": window,
             "window + 1s": window + timedelta(seconds=1), "-window": -window,
             "-window - 1s": -window - timedelta(seconds=1)}.get(offset, offset)
    incident = make_incident(5, source=source, category=category, observed_at=last_seen + delta)
    result = triage(config, entry_for("T-known", last_seen), incident, NOW)
    if repeat:
        assert result.event.action is TicketAction.occurrence
        assert (result.event.ticket_id, result.event.event_id) == ("T-known", f"occ-{incident.incident_id}")
        assert result.event.incident == incident and result.event.ticket is None
        [seen] = result.entry.tickets
        assert (seen.ticket_id, seen.last_seen_at) == ("T-known", max(last_seen, incident.observed_at))
    elif delta > timedelta(0):
        assert result.event.action is TicketAction.open
        assert result.event.ticket.previous_ticket_id == "T-known"
        assert [s.ticket_id for s in result.entry.tickets] == ["T-known", result.event.ticket_id]
        assert (latest(result.entry).opened_at, latest(result.entry).last_seen_at) == (NOW, incident.observed_at)
    else:
        # An old report gets its own ticket, remembered before the current one, so its own late
        # copies merge into it while the current problem keeps collecting its reports.
        assert result.event.action is TicketAction.open
        assert result.event.ticket.previous_ticket_id is None
        assert [s.ticket_id for s in result.entry.tickets] == [result.event.ticket_id, "T-known"]


def test_a_run_of_readings_keeps_one_ticket_and_then_a_new_one_points_back(config):
    base = NOW - timedelta(hours=10)
    entry = None
    events = []
    # Every 2 h for 8 h stays inside the 3 h flood window each time; then a 4 h gap.
    for n, hours in enumerate([0, 2, 4, 6, 8, 12], start=1):
        result = triage(config, entry, make_incident(n, observed_at=base + timedelta(hours=hours)), NOW)
        entry = result.entry
        events.append(result.event)
    assert [e.action.value for e in events] == ["open"] + ["occurrence"] * 4 + ["open"]
    first, last = events[0], events[-1]
    assert {e.ticket_id for e in events[:5]} == {first.ticket_id}
    assert last.ticket.previous_ticket_id == first.ticket_id
    assert [s.ticket_id for s in entry.tickets] == [first.ticket_id, last.ticket_id]


def test_copies_of_an_earlier_problem_delivered_after_a_later_one_still_merge(config):
    # Found by the kill -9 test: raw partitions replay at different speeds, so the third week's
    # problem on a spot was triaged between the copies of the first week's.
    week_one, week_three = NOW - timedelta(days=21), NOW
    entry, events = None, []
    for n, observed in enumerate([week_one, week_three, week_one + timedelta(minutes=1),
                                  week_one - timedelta(minutes=1), week_three + timedelta(minutes=1)], start=1):
        result = triage(config, entry, make_incident(n, observed_at=observed), NOW)
        entry = result.entry
        events.append(result.event)
    first, second = events[0].ticket_id, events[1].ticket_id
    assert [(e.action.value, e.ticket_id) for e in events] == [
        ("open", first), ("open", second), ("occurrence", first), ("occurrence", first), ("occurrence", second)]


def test_different_keys_do_not_merge(config):
    # Triage only sees the entry the table holds for the incident's own key: none for a new key.
    a = triage(config, None, make_incident(1, key="JS-LY-05"), NOW)
    b = triage(config, None, make_incident(2, key="JS-LY-06"), NOW)
    assert a.event.action is b.event.action is TicketAction.open
    assert a.event.ticket_id != b.event.ticket_id
