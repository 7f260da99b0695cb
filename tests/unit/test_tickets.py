"""Opening tickets and folding occurrences into them, on incidents built directly.

The decision around them (dedup -> route -> open, occurrence or successor) is test_ticketing.py's."""
from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest

from handlers.intake import digest
from handlers.privacy import mask_everywhere, mask_personal
from handlers.routing import route
from handlers.tickets import LISTED_INCIDENTS, MAX_OCCURRENCE_ENTRIES, PIPELINE, add_occurrence, open_ticket, \
    ticket_id_for
from schemas.enums import OPS_CENTRE, Category, Severity, Source, TicketStatus
from schemas.records import HistoryKind, Incident
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


def test_a_ticket_id_whose_hash_reads_as_a_phone_number_is_not_masked_in_a_payload(config):
    # About one incident in fifty hashes to digits only (T20261207-41523493): masked, a webhook's
    # ticket_id or a page's link named no ticket.
    incident = next(i for i in map(make_incident, range(1, 1000))
                    if re.fullmatch(r"[2-9]\d{7}", digest(i.incident_id, size=4)))
    ticket_id = ticket_id_for(incident)
    assert ticket_id != f"T20260512-{digest(incident.incident_id, size=4)}"
    assert mask_personal(f"工单 {ticket_id} 已派") == f"工单 {ticket_id} 已派"
    assert mask_everywhere(ticket_for(config, incident).model_dump(mode="json"))["ticket_id"] == ticket_id


def test_ticket_id_date_is_the_observation_date(config):
    # Observed on the 11th at 23:50 local, dispatched after midnight.
    late = make_incident(3, observed_at=datetime(2026, 5, 11, 23, 50, tzinfo=SHANGHAI))
    assert ticket_for(config, late).ticket_id.startswith("T20260511-")


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
    assert later.version == t.version + 1
    assert later.history[-1].model_dump() == {"at": NOW, "by": PIPELINE, "action": "occurrence",
                                              "note": earlier.incident_id, "event_id": "", "user": None,
                                              "kind": HistoryKind.occurrence}
    # Whether an incident was counted before is the ticket step's to know (its key's state):
    # add_occurrence always counts.
    assert add_occurrence(later, earlier, NOW).occurrences == 3


def test_the_ticket_lists_only_the_latest_incident_ids(config):
    t = ticket_for(config, make_incident(1))
    for n in range(2, 2 + LISTED_INCIDENTS + 10):
        t = add_occurrence(t, make_incident(n), NOW + timedelta(seconds=n))
    assert LISTED_INCIDENTS == 20
    assert t.occurrences == 1 + LISTED_INCIDENTS + 10
    assert t.incident_ids == [make_incident(n).incident_id for n in range(12, 2 + LISTED_INCIDENTS + 10)]
    assert t.incident_id == make_incident(1).incident_id  # the first report stays the ticket's own


def test_history_keeps_the_latest_occurrence_entries_and_every_other_entry(config):
    t = ticket_for(config, make_incident(1))
    for n in range(2, 2 + MAX_OCCURRENCE_ENTRIES + 5):
        t = add_occurrence(t, make_incident(n), NOW + timedelta(seconds=n))
    assert t.occurrences == 1 + MAX_OCCURRENCE_ENTRIES + 5  # the opening report and 25 more
    occurrence_notes = [h.note for h in t.history if h.action == "occurrence"]
    assert occurrence_notes == [make_incident(n).incident_id for n in range(7, 2 + MAX_OCCURRENCE_ENTRIES + 5)]
    assert t.history[0].action == "dispatch"
