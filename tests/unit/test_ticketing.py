"""The ticket step (handlers.ticketing.step): an incident or a command against its dedup key's state.

incident -> counted before? -> replayed | dedup match -> occurrence (closed: successor) | route -> new ticket
command  -> its ticket      -> lifecycle.apply | expire
"""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from handlers import escalation, ticketing
from handlers.deadlines import due_dates
from handlers.lifecycle import Verdict
from handlers.routing import route
from handlers.tickets import LISTED_INCIDENTS, PIPELINE, open_ticket, ticket_id_for
from handlers.ticketing import Escalated, Merged, Opened
from schemas.enums import OPS_CENTRE, Category, Escalation, Severity, Source, TicketStatus
from schemas.correlation import Part
from schemas.records import HistoryKind, Incident, KeyState, Seen, TicketAction, TicketEvent, Touched
from tests.unit.conftest import NOW
from tests.unit.photos import AFTER

A = TicketAction
S = TicketStatus
KEY = "flood:flood_waterlogging:JS-LY-05"
OWNER = "flood_control"


def make_incident(n: int = 1, *, source: Source = Source.flood, category: Category = Category.flood_waterlogging,
                  severity: Severity = Severity.orange, observed_at: datetime | None = None,
                  received_at: datetime | None = None, community: str | None = "liyuan",
                  key: str = "JS-LY-05") -> Incident:
    """Received two seconds after it was observed unless told otherwise."""
    observed = observed_at or NOW - timedelta(minutes=20)
    return Incident(
        incident_id=f"{source.value[:4]}-{n:016x}", source=source, category=category, subcategory="underpass",
        severity=severity, title=f"report {n}", lat=22.5297, lon=113.9098, community=community,
        observed_at=observed, received_at=received_at or observed + timedelta(seconds=2),
        dedup_key=f"{source.value}:{category.value}:{key}", source_ref=f"{key}@{observed.isoformat()}")


def command(action: TicketAction, ticket_id: str, actor: str, at: datetime, event_id: str | None = None,
            **fields) -> TicketEvent:
    return TicketEvent(event_id=event_id or f"{action.value}-{ticket_id}-{at.isoformat()}", ticket_id=ticket_id,
                       action=action, by=actor, actor=actor, at=at, **fields)


def run(config, items, state: KeyState | None = None, key: str = KEY):
    """Step through `items`; the final state and every outcome."""
    outcomes = []
    for item in items:
        outcome = ticketing.step(config, state, item, key)
        outcomes.append(outcome)
        state = outcome.state
    return state, outcomes


def close(config, state: KeyState, ticket_id: str, start: datetime) -> KeyState:
    """Accept, resolve (with the photo after the work a waterlogging ticket needs) and verify a ticket, one
    minute apart from `start`."""
    state, outcomes = run(config, [
        command(A.accept, ticket_id, OWNER, start),
        command(A.evidence, ticket_id, OWNER, start + timedelta(minutes=1), photo=AFTER),
        command(A.resolve, ticket_id, OWNER, start + timedelta(minutes=1), note="pumped out"),
        command(A.verify, ticket_id, OPS_CENTRE, start + timedelta(minutes=2), passed=True)], state)
    assert [o.verdict for o in outcomes] == [Verdict.applied] * 4
    assert state.tickets[ticket_id].status is S.closed
    return state


# ------------------------------------------------------------------ opening

def test_first_incident_opens_a_ticket(config):
    incident = make_incident(1)
    outcome = ticketing.step(config, None, incident, KEY)
    assert outcome.verdict is Verdict.applied and outcome.reason == ""
    [ticket] = outcome.tickets
    expected = open_ticket(config, incident, route(config, incident.category, incident.severity, incident.community),
                           incident.received_at)
    assert ticket == expected
    assert (ticket.ticket_id, ticket.dedup_key, ticket.incident_ids) == \
        (ticket_id_for(incident), KEY, [incident.incident_id])
    assert ticket.previous_ticket_id is None
    # "Now" is when the incident was received, not when the step ran.
    assert ticket.dispatched_at == ticket.history[0].at == incident.received_at
    assert ticket.accept_due == incident.received_at + timedelta(minutes=15)   # orange waterlogging
    assert outcome.counts == (Opened(OWNER, Severity.orange),)
    assert outcome.evicted == ()
    assert outcome.state == KeyState(
        dedup_key=KEY, tickets={ticket.ticket_id: ticket},
        seen=[Seen(ticket_id=ticket.ticket_id, first_seen_at=incident.observed_at,
                   last_seen_at=incident.observed_at, last_received_at=incident.received_at)],
        recent={incident.incident_id: Touched(tickets=[ticket.ticket_id])},
        # An orange waterlogging ticket is a cause in rules.yaml's 积水致拥堵: sighted by the report that opened it.
        sighted={incident.incident_id: [Part(rule="积水致拥堵", role="cause", ticket_id=ticket.ticket_id,
                                              severity=Severity.orange)]})
    assert len(outcome.sightings) == 4 and {s.cell.split(":")[1] for s in outcome.sightings} == {"积水致拥堵"}


def test_the_state_is_not_changed_in_place(config):
    state, _ = run(config, [make_incident(1)])
    before = state.model_dump_json()
    ticketing.step(config, state, make_incident(2, observed_at=NOW - timedelta(minutes=10)), KEY)
    ticketing.step(config, state, command(A.accept, ticket_id_for(make_incident(1)), OWNER, NOW), KEY)
    assert state.model_dump_json() == before


def test_the_same_incident_always_opens_the_same_ticket_id(config):
    incident = make_incident(1)
    a = ticketing.step(config, None, incident, KEY)
    b = ticketing.step(config, None, incident.model_copy(update={"received_at": incident.received_at
                                                                 + timedelta(minutes=1)}), KEY)
    assert a.tickets[0].ticket_id == b.tickets[0].ticket_id == ticket_id_for(incident)


def test_captured_payloads_open_on_their_own_key(config, incident):
    accident = incident()
    outcome = ticketing.step(config, None, accident, accident.dedup_key)
    [ticket] = outcome.tickets
    assert (ticket.department, ticket.community, ticket.dedup_key) == ("traffic_police", "wanghai", accident.dedup_key)
    assert outcome.state.dedup_key == accident.dedup_key
    assert ticket.accept_due == accident.received_at + timedelta(hours=2)      # yellow: accept 2h


def test_out_of_jurisdiction_incident_goes_to_the_ops_centre(config, incident):
    outside = incident("traffic", "outside_district")
    assert outside.community is None
    [ticket] = ticketing.step(config, None, outside, outside.dedup_key).tickets
    assert (ticket.department, ticket.out_of_jurisdiction) == (OPS_CENTRE, True)
    assert "out of jurisdiction" in ticket.history[0].note


def test_red_incident_ticket_is_watched_by_the_ops_centre(config, incident):
    pileup = incident("traffic", "accident_pileup")
    outcome = ticketing.step(config, None, pileup, pileup.dedup_key)
    [ticket] = outcome.tickets
    assert (ticket.severity, ticket.department, ticket.watchers) == (Severity.red, "traffic_police", [OPS_CENTRE])
    assert outcome.counts == (Opened("traffic_police", Severity.red),)


def test_different_keys_do_not_merge(config):
    # The step only sees the state the table holds for the incident's own key: none for a new key.
    a = ticketing.step(config, None, make_incident(1, key="JS-LY-05"), KEY)
    b = ticketing.step(config, None, make_incident(2, key="JS-LY-06"), "flood:flood_waterlogging:JS-LY-06")
    assert a.counts == b.counts == (Opened(OWNER, Severity.orange),)
    assert a.tickets[0].ticket_id != b.tickets[0].ticket_id


# ------------------------------------------------------------------ occurrences (并单)

def test_repeat_inside_the_window_is_an_occurrence_of_the_same_ticket(config):
    first = make_incident(1)
    state, [opened] = run(config, [first])
    repeat = make_incident(2, observed_at=first.observed_at + timedelta(minutes=25))
    outcome = ticketing.step(config, state, repeat, KEY)
    assert outcome.verdict is Verdict.applied
    [merged] = outcome.tickets
    assert merged.ticket_id == opened.tickets[0].ticket_id
    assert (merged.occurrences, merged.version, merged.last_seen_at) == (2, 2, repeat.observed_at)
    assert merged.incident_ids == [first.incident_id, repeat.incident_id]
    assert merged.history[-1].model_dump() == {"at": repeat.received_at, "by": PIPELINE, "action": "occurrence",
                                               "note": repeat.incident_id, "event_id": "", "user": None,
                                                   "kind": HistoryKind.occurrence}
    assert outcome.counts == (Merged("flood"),)
    [seen] = outcome.state.seen
    assert (seen.ticket_id, seen.first_seen_at, seen.last_seen_at, seen.last_received_at) == \
        (merged.ticket_id, first.observed_at, repeat.observed_at, repeat.received_at)
    assert outcome.state.recent == {first.incident_id: Touched(tickets=[merged.ticket_id]),
                                    repeat.incident_id: Touched(tickets=[merged.ticket_id])}


def test_the_same_incident_is_counted_once(config):
    first, second = make_incident(1), make_incident(2, observed_at=NOW - timedelta(minutes=17))
    state, [_, once] = run(config, [first, second])
    [ticket] = once.tickets
    assert ticket.occurrences == 2
    # Redelivered: not counted again; the ticket as it stands is handed back for Redis to catch up.
    for again in (second, first):   # the first report of the ticket is no occurrence of it either
        outcome = ticketing.step(config, state, again, KEY)
        assert (outcome.verdict, outcome.state, outcome.tickets, outcome.counts) == \
            (Verdict.replayed, state, (ticket,), ())
        assert outcome.reason == "incident already counted"


def test_a_replay_is_recognised_however_many_reports_came_since(config):
    # The key's offset marks and runs, not the ticket's short list of ids, know what was counted.
    first = make_incident(1, observed_at=NOW - timedelta(hours=2))
    items = [first] + [make_incident(n, observed_at=first.observed_at + timedelta(seconds=20 * n))
                       for n in range(2, 2 + 250)]
    state = None
    for offset, item in enumerate(items):
        state = ticketing.step(config, state, item, KEY, position=ticketing.Position(2, offset)).state
    [ticket] = state.tickets.values()
    assert ticket.occurrences == 251 and len(ticket.incident_ids) == LISTED_INCIDENTS
    assert first.incident_id not in ticket.incident_ids
    for early in (first, items[1], items[100]):
        outcome = ticketing.step(config, state, early, KEY, position=ticketing.Position(2, items.index(early)))
        assert (outcome.verdict, outcome.tickets, outcome.state) == (Verdict.replayed, (ticket,), state)


def test_severity_only_rises(config):
    state, outcomes = run(config, [
        make_incident(1, severity=Severity.orange),
        make_incident(2, severity=Severity.yellow, observed_at=NOW - timedelta(minutes=19)),
        make_incident(3, severity=Severity.red, observed_at=NOW - timedelta(minutes=18)),
        make_incident(4, severity=Severity.blue, observed_at=NOW - timedelta(minutes=17))])
    assert [o.tickets[0].severity for o in outcomes] == [Severity.orange, Severity.orange, Severity.red, Severity.red]
    raised = outcomes[2].tickets[0].history[-1]
    assert (raised.action, raised.note, raised.event_id) == ("severity_raised", "orange -> red", make_incident(3).incident_id)
    assert outcomes[3].tickets[0].occurrences == 4
    # Counted as merges, not as tickets opened at the new severity.
    assert [o.counts for o in outcomes[1:]] == [(Merged("flood"),)] * 3


def test_a_raised_ticket_runs_to_the_new_severitys_deadlines_from_the_raise(config):
    blue = make_incident(1, severity=Severity.blue)
    red = make_incident(2, severity=Severity.red, observed_at=NOW - timedelta(minutes=10))
    state, outcomes = run(config, [blue, red])
    opened, raised = outcomes[0].tickets[0], outcomes[1].tickets[0]
    accept, resolve = due_dates(config, Category.flood_waterlogging, Severity.red, red.received_at)
    assert (raised.accept_due, raised.resolve_due) == (accept, resolve)
    assert raised.accept_due < opened.accept_due and raised.resolve_due < opened.resolve_due
    # The ladder follows: the next reminder is the red one, not the blue day's.
    assert escalation.ladder(config, raised)[0].due == accept
    # Replayed, the same deadlines.
    again = ticketing.step(config, state, red, KEY)
    assert again.verdict is Verdict.replayed and again.tickets[0] == raised


def test_a_raise_never_pushes_a_deadline_later(config):
    # Waterlogging: orange 15 min to accept and 3 h to resolve, red 5 min and 1 h.
    orange = make_incident(1, severity=Severity.orange, observed_at=NOW - timedelta(minutes=25))
    red = make_incident(2, severity=Severity.red, observed_at=NOW - timedelta(minutes=12))
    state, outcomes = run(config, [orange, red])
    opened, raised = outcomes[0].tickets[0], outcomes[1].tickets[0]
    accept, resolve = due_dates(config, Category.flood_waterlogging, Severity.red, red.received_at)
    assert raised.accept_due == opened.accept_due < accept
    assert raised.resolve_due == resolve < opened.resolve_due


def test_an_accepted_ticket_raised_keeps_its_acceptance_and_runs_to_the_new_resolve_deadline(config):
    blue = make_incident(1, severity=Severity.blue, observed_at=NOW - timedelta(minutes=30))
    state, outcomes = run(config, [blue])
    ticket_id = outcomes[0].tickets[0].ticket_id
    state, _ = run(config, [command(A.accept, ticket_id, OWNER, NOW - timedelta(minutes=25))], state)
    accepted = state.tickets[ticket_id]
    red = make_incident(2, severity=Severity.red, observed_at=NOW - timedelta(minutes=10))
    state, outcomes = run(config, [red], state)
    raised = outcomes[0].tickets[0]
    assert raised.accept_due == accepted.accept_due
    assert raised.resolve_due == min(accepted.resolve_due,
                                     due_dates(config, Category.flood_waterlogging, Severity.red, red.received_at)[1])


def test_a_red_occurrence_adds_the_centre_as_watcher(config):
    state, outcomes = run(config, [
        make_incident(1, severity=Severity.yellow),
        make_incident(2, severity=Severity.red, observed_at=NOW - timedelta(minutes=19)),
        make_incident(3, severity=Severity.red, observed_at=NOW - timedelta(minutes=18))])
    assert [o.tickets[0].watchers for o in outcomes] == [[], [OPS_CENTRE], [OPS_CENTRE]]  # not twice


def test_an_occurrence_on_a_returned_ticket_is_counted(config):
    first = make_incident(1)
    tid = ticket_id_for(first)
    state, _ = run(config, [first, command(A.return_, tid, OWNER, NOW, note="not ours")])
    outcome = ticketing.step(config, state, make_incident(9, observed_at=NOW - timedelta(minutes=5)), KEY)
    [counted] = outcome.tickets
    assert (counted.status, counted.occurrences) == (S.returned, 2)


# ------------------------------------------------------------------ the dedup window

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
    key = f"{source.value}:{category.value}:JS-LY-05"
    opening = make_incident(1, source=source, category=category, observed_at=last_seen)
    state, [opened] = run(config, [opening], key=key)
    known = opened.tickets[0].ticket_id
    delta = {"window - 1s": window - timedelta(seconds=1), "window": window,
             "window + 1s": window + timedelta(seconds=1), "-window": -window,
             "-window - 1s": -window - timedelta(seconds=1)}.get(offset, offset)
    incident = make_incident(5, source=source, category=category, observed_at=last_seen + delta)
    outcome = ticketing.step(config, state, incident, key)
    assert outcome.verdict is Verdict.applied
    ids = [s.ticket_id for s in outcome.state.seen]
    if repeat:
        [merged] = outcome.tickets
        assert (merged.ticket_id, merged.occurrences) == (known, 2)
        assert outcome.counts == (Merged(source.value),)
        [seen] = outcome.state.seen
        assert (seen.ticket_id, seen.last_seen_at) == (known, max(last_seen, incident.observed_at))
        return
    [new] = outcome.tickets
    assert new.ticket_id != known and outcome.counts[0].__class__ is Opened
    assert set(outcome.state.tickets) == {known, new.ticket_id}
    if delta > timedelta(0):
        # The problem came back after the window: the new ticket points at the previous one, whose
        # span ended with the window.
        assert new.previous_ticket_id == known
        assert ids == [new.ticket_id]
    else:
        # An old report gets its own ticket, remembered before the current one, so its own late
        # copies merge into it while the current problem keeps collecting its reports.
        assert new.previous_ticket_id is None
        assert ids == [new.ticket_id, known]


def test_each_source_uses_its_own_window(config, incident):
    # Two hours later: a new ticket for traffic (30 min), the same one for a flood station (3 h).
    first = incident()
    state, _ = run(config, [first], key=first.dedup_key)
    later = incident(event_id="TP-9", observed_at="2026-05-12T11:12:40+08:00",
                     received_at=NOW + timedelta(hours=2))
    assert ticketing.step(config, state, later, first.dedup_key).counts[0].__class__ is Opened
    gauge = incident("flood", "water_level_near_warning")
    state, _ = run(config, [gauge], key=gauge.dedup_key)
    rising = incident("flood", "water_level_near_warning", value=4.6, observed_at="2026-05-12T11:00:00+08:00",
                      received_at=NOW + timedelta(hours=2))
    assert rising.dedup_key == gauge.dedup_key
    assert ticketing.step(config, state, rising, gauge.dedup_key).counts == (Merged("flood"),)


def test_a_run_of_readings_keeps_one_ticket_and_then_a_new_one_points_back(config):
    base = NOW - timedelta(hours=10)
    # Every 2 h for 8 h stays inside the 3 h flood window each time; then a 4 h gap.
    state, outcomes = run(config, [make_incident(n, observed_at=base + timedelta(hours=hours))
                                   for n, hours in enumerate([0, 2, 4, 6, 8, 12], start=1)])
    first, last = outcomes[0].tickets[0], outcomes[-1].tickets[0]
    assert [o.counts[0].__class__.__name__ for o in outcomes] == ["Opened"] + ["Merged"] * 4 + ["Opened"]
    assert {o.tickets[0].ticket_id for o in outcomes[:5]} == {first.ticket_id}
    assert state.tickets[first.ticket_id].occurrences == 5
    assert last.previous_ticket_id == first.ticket_id
    assert [s.ticket_id for s in state.seen] == [last.ticket_id]


def test_copies_of_an_earlier_problem_delivered_after_a_later_one_still_merge(config):
    # Found by the kill -9 test: raw partitions replay at different speeds, so the third week's
    # problem on a spot was decided between the copies of the first week's, all received within
    # seconds (a late delivery keeps its span alive: Seen.last_received_at).
    week_one, week_three = NOW - timedelta(days=21), NOW
    state, outcomes = run(config, [make_incident(n, observed_at=observed, received_at=NOW + timedelta(seconds=n))
                                   for n, observed in enumerate(
        [week_one, week_three, week_one + timedelta(minutes=1), week_one - timedelta(minutes=1),
         week_three + timedelta(minutes=1)], start=1)])
    first, second = (outcomes[i].tickets[0].ticket_id for i in (0, 1))
    assert [(o.counts[0].__class__.__name__, o.tickets[0].ticket_id) for o in outcomes] == [
        ("Opened", first), ("Opened", second), ("Merged", first), ("Merged", first), ("Merged", second)]
    assert outcomes[1].tickets[0].previous_ticket_id == first


def test_copies_of_an_earlier_problem_merge_however_many_problems_opened_since(config):
    # There is no cap on the tickets a key remembers (the old one kept 8): twelve problems a day
    # apart, delivered together by a slow source, then late copies of the first and a middle one.
    days = [NOW - timedelta(days=12 - d) for d in range(12)]
    state, outcomes = run(config, [make_incident(d + 1, observed_at=day, received_at=NOW + timedelta(seconds=d))
                                   for d, day in enumerate(days)])
    opened = [o.tickets[0].ticket_id for o in outcomes]
    assert len(set(opened)) == 12 and len(state.seen) == 12
    late = [make_incident(100, observed_at=days[0] + timedelta(minutes=3), received_at=NOW + timedelta(minutes=1)),
            make_incident(101, observed_at=days[5] - timedelta(minutes=3), received_at=NOW + timedelta(minutes=2))]
    state, merged = run(config, late, state)
    assert [o.tickets[0].ticket_id for o in merged] == [opened[0], opened[5]]


def test_an_old_report_first_received_after_its_window_opens_its_own_ticket(config):
    # The dedup memory ends a window after the last observation or delivery: a report of last week's
    # problem that only arrives now, a week after the last delivery, is a new problem of its own
    # (linked to the ticket it came after).
    first = make_incident(1, observed_at=NOW - timedelta(days=7))
    state, _ = run(config, [first])
    stale = make_incident(2, observed_at=NOW - timedelta(days=7, minutes=-5), received_at=NOW)
    outcome = ticketing.step(config, state, stale, KEY)
    [ticket] = outcome.tickets
    assert outcome.counts == (Opened(OWNER, Severity.orange),)
    assert ticket.ticket_id != ticket_id_for(first) and ticket.previous_ticket_id == ticket_id_for(first)
    assert [s.ticket_id for s in outcome.state.seen] == [ticket.ticket_id]


# ------------------------------------------------------------------ recurrence after closure

def test_a_report_on_a_closed_ticket_opens_a_successor_in_the_same_step(config):
    first = make_incident(1)
    tid = ticket_id_for(first)
    state, _ = run(config, [first])
    state = close(config, state, tid, NOW)
    closed = state.tickets[tid]
    recurrence = make_incident(7, observed_at=NOW + timedelta(minutes=10), received_at=NOW + timedelta(minutes=12))
    outcome = ticketing.step(config, state, recurrence, KEY)
    assert outcome.verdict is Verdict.applied
    old, successor = outcome.tickets
    assert successor.ticket_id == ticket_id_for(recurrence) != tid
    assert (successor.previous_ticket_id, old.successor_ticket_id) == (tid, successor.ticket_id)
    assert (old.status, old.version, old.occurrences) == (S.closed, closed.version + 1, closed.occurrences)
    assert old.history[-1].model_dump() == {
        "at": recurrence.received_at, "by": PIPELINE, "action": "recurred",
        "note": f"new ticket {successor.ticket_id}", "event_id": recurrence.incident_id, "user": None,
        "kind": HistoryKind.recurred, "related_ticket_id": successor.ticket_id}
    assert (successor.status, successor.department, successor.incident_ids) == \
        (S.dispatched, OWNER, [recurrence.incident_id])
    assert successor.dispatched_at == recurrence.received_at
    assert successor.accept_due == recurrence.received_at + timedelta(minutes=15)
    assert outcome.counts == (Opened(OWNER, Severity.orange),)
    assert outcome.state.recent[recurrence.incident_id] == Touched(tickets=[tid, successor.ticket_id])
    assert latest_seen(outcome.state) == successor.ticket_id

    # A later report goes to the successor; the closed ticket stays as it was.
    state = outcome.state
    later = make_incident(8, observed_at=NOW + timedelta(minutes=20))
    forwarded = ticketing.step(config, state, later, KEY)
    [counted] = forwarded.tickets
    assert counted.ticket_id == successor.ticket_id
    assert (counted.occurrences, counted.incident_ids[-1]) == (2, later.incident_id)
    assert forwarded.counts == (Merged("flood"),)
    assert forwarded.state.tickets[tid] == old

    # Replaying the recurrence re-emits both tickets as they stand and opens nothing more.
    again = ticketing.step(config, forwarded.state, recurrence, KEY)
    assert (again.verdict, again.tickets) == (Verdict.replayed, (old, counted))
    assert again.state == forwarded.state


def latest_seen(state: KeyState) -> str:
    return state.seen[-1].ticket_id


def test_reports_go_to_the_newest_successor(config):
    first = make_incident(1)
    state, _ = run(config, [first])
    state = close(config, state, ticket_id_for(first), NOW)
    second = make_incident(2, observed_at=NOW + timedelta(minutes=10))
    state, _ = run(config, [second], state)
    state = close(config, state, ticket_id_for(second), NOW + timedelta(minutes=20))
    third = make_incident(3, observed_at=NOW + timedelta(minutes=30))
    outcome = ticketing.step(config, state, third, KEY)
    middle, newest = outcome.tickets
    assert middle.ticket_id == ticket_id_for(second) and newest.previous_ticket_id == middle.ticket_id
    assert outcome.state.tickets[ticket_id_for(first)] == state.tickets[ticket_id_for(first)]


def test_a_redelivered_occurrence_on_a_closed_ticket_opens_nothing(config):
    first, second = make_incident(1), make_incident(2, observed_at=NOW - timedelta(minutes=19))
    tid = ticket_id_for(first)
    state, _ = run(config, [first, second])
    state = close(config, state, tid, NOW)
    # The occurrence comes again (a worker restarted before committing its offset).
    outcome = ticketing.step(config, state, second, KEY)
    assert (outcome.verdict, outcome.tickets, outcome.state) == (Verdict.replayed, (state.tickets[tid],), state)
    assert outcome.tickets[0].successor_ticket_id is None


# ------------------------------------------------------------------ commands

def test_commands_are_applied_at_their_own_time(config):
    first = make_incident(1)
    tid = ticket_id_for(first)
    state, _ = run(config, [first])
    accept = command(A.accept, tid, OWNER, NOW + timedelta(minutes=3))
    outcome = ticketing.step(config, state, accept, KEY)
    [accepted] = outcome.tickets
    assert outcome.verdict is Verdict.applied and outcome.counts == ()
    assert (accepted.status, accepted.accepted_at, accepted.history[-1].at) == \
        (S.accepted, accept.at, accept.at)
    assert outcome.state.tickets[tid] == accepted
    assert (outcome.state.seen, outcome.state.recent) == (state.seen, state.recent)
    # Replayed: the ticket as it stands, nothing changes.
    again = ticketing.step(config, outcome.state, accept, KEY)
    assert (again.verdict, again.tickets, again.state) == (Verdict.replayed, (accepted,), outcome.state)
    assert again.reason == "event already applied"


def test_a_refused_command_changes_nothing_and_writes_nothing(config):
    first = make_incident(1)
    tid = ticket_id_for(first)
    state, _ = run(config, [first])
    for ev in (command(A.verify, tid, OWNER, NOW, passed=True),              # a department verifying itself
               command(A.resolve, tid, OWNER, NOW, note="done")):           # not accepted yet
        outcome = ticketing.step(config, state, ev, KEY)
        assert (outcome.verdict, outcome.state, outcome.tickets, outcome.evicted) == (Verdict.refused, state, (), ())
        assert outcome.reason


@pytest.mark.parametrize("state", [None, "other tickets"])
def test_a_command_on_an_unknown_ticket_is_refused(config, state):
    if state is not None:
        state, _ = run(config, [make_incident(1)])
    outcome = ticketing.step(config, state, command(A.accept, "T-none", OWNER, NOW), KEY)
    assert (outcome.verdict, outcome.state, outcome.tickets) == (Verdict.refused, state, ())
    assert outcome.reason == "unknown ticket T-none"


def test_an_escalation_is_applied_once_and_counted(config):
    first = make_incident(1, severity=Severity.red)
    tid = ticket_id_for(first)
    state, _ = run(config, [first])
    ticket = state.tickets[tid]
    due = ticket.accept_due
    [reminder, escalated] = escalation.due_steps(config, ticket, due)
    outcomes = []
    for step in (reminder, escalated):
        outcome = ticketing.step(config, state, escalation.escalation_event(state.tickets[tid], step, due), KEY)
        outcomes.append(outcome)
        state = outcome.state
    assert [o.verdict for o in outcomes] == [Verdict.applied] * 2
    assert [o.counts for o in outcomes] == [(Escalated(OWNER, "accept", Escalation.reminded),),
                                            (Escalated(OWNER, "accept", Escalation.escalated),)]
    assert state.tickets[tid].escalation is Escalation.escalated
    again = ticketing.step(config, state, escalation.escalation_event(ticket, escalated, due), KEY)
    assert (again.verdict, again.counts, again.tickets) == (Verdict.replayed, (), (state.tickets[tid],))
    # No longer due once accepted: refused, not counted.
    state, _ = run(config, [command(A.accept, tid, OWNER, due)], state)
    [*_, report] = [s for s in escalation.ladder(config, ticket) if s.stage == "accept"]
    late = ticketing.step(config, state, escalation.escalation_event(ticket, report, report.at), KEY)
    assert (late.verdict, late.counts, late.reason) == (Verdict.refused, (), "escalation no longer due")


# ------------------------------------------------------------------ retention

RETENTION = timedelta(days=30)


def test_expire_event_only_for_tickets_closed_past_retention(config):
    first = make_incident(1)
    tid = ticket_id_for(first)
    state, _ = run(config, [first])
    assert ticketing.expire_event(state.tickets[tid], RETENTION, NOW + timedelta(days=365)) is None   # open
    state = close(config, state, tid, NOW)
    closed = state.tickets[tid]
    assert ticketing.expire_event(closed, RETENTION, closed.closed_at + RETENTION - timedelta(seconds=1)) is None
    ev = ticketing.expire_event(closed, RETENTION, closed.closed_at + RETENTION)
    assert (ev.action, ev.ticket_id, ev.by, ev.actor, ev.at) == \
        (A.expire, tid, PIPELINE, PIPELINE, closed.closed_at + RETENTION)
    assert ev.event_id == f"expire-{tid}-{closed.version}"


def test_expiring_the_last_ticket_keeps_only_when_it_closed(config):
    first = make_incident(1)
    tid = ticket_id_for(first)
    state, _ = run(config, [first])
    state = close(config, state, tid, NOW)
    closed_at = state.tickets[tid].closed_at
    ev = ticketing.expire_event(state.tickets[tid], RETENTION, NOW + RETENTION + timedelta(days=1))
    outcome = ticketing.step(config, state, ev, KEY)
    assert (outcome.verdict, outcome.tickets, outcome.evicted) == (Verdict.applied, (), (tid,))
    assert outcome.state == KeyState(dedup_key=KEY, expired_through=closed_at)
    # Replayed after the ticket left: only the Redis side may be missing.
    again = ticketing.step(config, outcome.state, ev, KEY)
    assert (again.verdict, again.tickets, again.evicted) == (Verdict.replayed, (), (tid,))


def test_expiring_a_ticket_keeps_the_others_and_what_their_reports_touched(config):
    first = make_incident(1)
    old = ticket_id_for(first)
    state, _ = run(config, [first])
    state = close(config, state, old, NOW)
    recurrence = make_incident(2, observed_at=NOW + timedelta(minutes=10))
    new = ticket_id_for(recurrence)
    state, _ = run(config, [recurrence], state)
    ev = ticketing.expire_event(state.tickets[old], RETENTION, NOW + RETENTION + timedelta(days=1))
    outcome = ticketing.step(config, state, ev, KEY)
    assert (outcome.verdict, outcome.evicted, outcome.tickets) == (Verdict.applied, (old,), ())
    assert set(outcome.state.tickets) == {new}
    assert outcome.state.recent == {recurrence.incident_id: Touched(tickets=[new])}
    assert [s.ticket_id for s in outcome.state.seen] == [new]


def test_expire_is_refused_for_an_open_ticket_or_one_reopened_after_the_sweep_looked(config):
    first = make_incident(1)
    tid = ticket_id_for(first)
    state, _ = run(config, [first])
    sweep_at = NOW + timedelta(hours=1)
    open_ev = TicketEvent(event_id="expire-x", ticket_id=tid, action=A.expire, by=PIPELINE, actor=PIPELINE,
                          at=sweep_at)
    refused = ticketing.step(config, state, open_ev, KEY)
    assert (refused.verdict, refused.state, refused.evicted) == (Verdict.refused, state, ())
    state = close(config, state, tid, NOW)
    ev = ticketing.expire_event(state.tickets[tid], timedelta(minutes=10), sweep_at)
    # Reopened, and closed again after the sweep's look: the command is stale.
    state, _ = run(config, [command(A.reopen, tid, OPS_CENTRE, sweep_at + timedelta(minutes=1), note="back")], state)
    state = close(config, state, tid, sweep_at + timedelta(minutes=2))
    stale = ticketing.step(config, state, ev, KEY)
    assert (stale.verdict, stale.state) == (Verdict.refused, state)
    assert stale.reason == "ticket is not closed past retention"

