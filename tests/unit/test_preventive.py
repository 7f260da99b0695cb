"""Acting before the call (未诉先办, handlers/preventive.py): a rainstorm warning opens one preventive ticket per
recurring place of the rule's kinds, with the place's history in its words, for its department; through the
ticket step exactly once, on a replay with any of its outputs lost, from a second worker's command, and for a
second warning or a level raised in the same period; a new period opens new ones."""
from __future__ import annotations

import itertools
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import yaml

from handlers import hotspots, performance, preventive, ticketing
from handlers.hotspots import Sighting
from handlers.lifecycle import Verdict
from schemas.cap import CapRecord
from schemas.config import ConfigError, PreventiveRule, load_config
from schemas.enums import Category, Hazard, Severity, TicketKind, TicketStatus
from schemas.preventive import PreventiveOpen
from schemas.records import HistoryKind, KeyState, TicketAction, TicketEvent
from schemas.response import MANUAL, ResponseChange
from tests.unit.conftest import CONFIG_DIR

UTC = ZoneInfo("UTC")
WARNED = datetime(2026, 8, 31, 2, 0, tzinfo=UTC)  # 10:00 in the district
LAT, LON = 22.5294, 113.9286  # in 桂湾 (guiwan)
WATER, MANHOLE, ROAD = Category.flood_waterlogging, Category.city_manhole, Category.city_road_damage


@pytest.fixture(scope="module")
def config(config):
    """The shipped config, looking back 90 days for places back 3 times within 100 m."""
    rules = config.rules.model_copy(update={
        "hotspots": config.rules.hotspots.model_copy(update={"days": 90, "min_count": 3, "storms": 0}),
        "preventive": [PreventiveRule(warning="rainstorm", categories={WATER: "积水", MANHOLE: "井盖问题"},
                                      severity=Severity.blue)]})
    return config.model_copy(update={"rules": rules})


def east(metres: float) -> float:
    return LON + metres / 102_500.0


def seen(n: int, days_ago: float, lon: float = LON, category: Category = WATER,
         department: str = "flood_control") -> Sighting:
    return Sighting(f"T-{n:02d}", category, LAT, lon, WARNED - timedelta(days=days_ago), department, False)


# Four waterlogging returns within 90 days at one underpass; a manhole back three times 600 m east; waterlogging
# twice 1.2 km east (not a place); road damage three times 1.8 km east (a place, but not a rainstorm's kind).
HISTORY = [
    seen(1, 80), seen(2, 41), seen(3, 12), seen(4, 3, lon=east(20)),
    seen(5, 60, east(600), MANHOLE, "city_management"), seen(6, 30, east(610), MANHOLE, "city_management"),
    seen(7, 5, east(600), MANHOLE, "city_management"),
    seen(8, 20, east(1200)), seen(9, 10, east(1200)),
    seen(10, 50, east(1800), ROAD, "city_management"), seen(11, 40, east(1800), ROAD, "city_management"),
    seen(12, 30, east(1800), ROAD, "city_management"),
]


def cap(identifier: str, chain: str, received: datetime, msg_type: str = "Alert",
        kind: str | None = "rainstorm") -> CapRecord:
    return CapRecord(key=f"szmb,{identifier}", identifier=identifier, sender="szmb", sent=received, status="Actual",
                     msg_type=msg_type, feed="szmb", received_at=received, chain=chain, kind=kind)


def commands(config, records, now, found=HISTORY, histories=None) -> list[PreventiveOpen]:
    """What a worker's timer sends at `now` (before the topic: as it comes off it)."""
    histories = histories or {}
    every_storm = hotspots.storms(histories, timedelta(minutes=30), hotspots.rainstorm_warnings(records))
    out = []
    for period in preventive.periods(config, histories, records, now):
        places = preventive.places(config, period, found, every_storm, now)
        out += preventive.openings(config, period, places, now)
    return [PreventiveOpen.model_validate_json(c.model_dump_json()) for c in out]


def take(config, states: dict, found: list[PreventiveOpen]) -> list[ticketing.Outcome]:
    """Each command through the ticket step against its key's state (kept in `states`, the table)."""
    outcomes = []
    for command in found:
        key = preventive.key_of(command)
        outcome = ticketing.step(config, states.get(key), command, key)
        states[key] = outcome.state
        outcomes.append(outcome)
    return outcomes


def test_a_rainstorm_warning_opens_one_preventive_ticket_per_recurring_place_with_its_history(config):
    records = [cap("w1", "W", WARNED)]
    states: dict = {}
    outcomes = take(config, states, commands(config, records, WARNED + timedelta(seconds=5)))
    assert [o.verdict for o in outcomes] == [Verdict.applied, Verdict.applied]
    water, manhole = [o.tickets[0] for o in outcomes]
    assert (water.category, water.lat, water.lon, water.department) == (WATER, LAT, LON, "flood_control")
    assert (manhole.category, manhole.department) == (MANHOLE, "city_management")
    assert manhole.lon == pytest.approx(east(600))
    for ticket in (water, manhole):
        assert (ticket.kind, ticket.severity, ticket.status) == (TicketKind.preventive, Severity.blue,
                                                                TicketStatus.dispatched)
        assert ticket.dispatched_at == WARNED + timedelta(seconds=5)
        assert ticket.title.startswith("未诉先办：暴雨预警")
        assert ticket.history[0].kind is HistoryKind.dispatch and ticket.community == "guiwan"
    # The newest three local dates, oldest first: 41, 12 and 3 days before 10:00 on 31 August.
    assert water.description == "此处近90天积水4次（最近：7月21日、8月19日、8月28日）"
    assert manhole.description == "此处近90天井盖问题3次（最近：7月2日、8月1日、8月26日）"
    assert [o.counts for o in outcomes] == [(ticketing.Opened("flood_control", Severity.blue),),
                                          (ticketing.Opened("city_management", Severity.blue),)]


def test_no_warning_no_ticket_and_a_typhoon_rule_does_not_answer_a_rainstorm(config):
    assert commands(config, [], WARNED) == []
    assert commands(config, [cap("t1", "T", WARNED, kind="typhoon")], WARNED + timedelta(seconds=5)) == []
    cancelled = [cap("w1", "W", WARNED), cap("w2", "W", WARNED + timedelta(hours=2), msg_type="Cancel", kind=None)]
    assert commands(config, cancelled, WARNED + timedelta(hours=3)) == []


def test_a_resident_calling_during_the_storm_does_not_make_a_place(config):
    """Two waterlogging reports before the warning and a third after it: the place is not a recurring one
    by the history before the period, so nothing is opened for it."""
    calls = [seen(1, 20, east(3000)), seen(2, 10, east(3000)),
             Sighting("T-99", WATER, LAT, east(3000), WARNED + timedelta(minutes=20), "flood_control", True)]
    assert commands(config, [cap("w1", "W", WARNED)], WARNED + timedelta(minutes=30), found=calls) == []


def outputs(outcome: ticketing.Outcome) -> tuple:
    return tuple(t.model_dump_json() for t in outcome.tickets)


def test_replayed_with_any_of_its_outputs_lost_nothing_is_opened_twice(config):
    """Outputs are the table write and the ticket (Redis, soc.tickets): whichever were lost, the command
    processed again writes the same ticket, under the same id, and the projection equals the first run's."""
    [command, _] = commands(config, [cap("w1", "W", WARNED)], WARNED + timedelta(seconds=5))
    key = preventive.key_of(command)
    first = ticketing.step(config, None, command, key)
    for lost in itertools.chain.from_iterable(itertools.combinations(("table", "ticket"), n) for n in range(3)):
        state = None if "table" in lost else KeyState.model_validate_json(first.state.model_dump_json())
        again = ticketing.step(config, state, command, key)
        assert outputs(again) == outputs(first), lost
        projection = {} if "ticket" in lost else {t.ticket_id: t.model_dump_json() for t in first.tickets}
        projection.update({t.ticket_id: t.model_dump_json() for t in again.tickets})
        assert projection == {t.ticket_id: t.model_dump_json() for t in first.tickets}, lost
        assert again.verdict is (Verdict.applied if "table" in lost else Verdict.replayed)


def test_its_department_accepts_it_and_the_opening_replayed_afterwards_writes_it_as_it_stands(config):
    [command, _] = commands(config, [cap("w1", "W", WARNED)], WARNED + timedelta(seconds=5))
    key = preventive.key_of(command)
    opened = ticketing.step(config, None, command, key)
    [ticket] = opened.tickets
    accept = TicketEvent(event_id="api-accept-1", ticket_id=ticket.ticket_id, action=TicketAction.accept,
                         by="陈三防", actor=ticket.department, at=WARNED + timedelta(minutes=3))
    accepted = ticketing.step(config, opened.state, accept, key)
    assert accepted.verdict is Verdict.applied and accepted.tickets[0].status is TicketStatus.accepted
    again = ticketing.step(config, accepted.state, command, key)
    assert again.verdict is Verdict.replayed and again.counts == ()
    assert [t.model_dump_json() for t in again.tickets] == [t.model_dump_json() for t in accepted.tickets]


def test_a_second_worker_a_later_tick_a_second_warning_and_a_level_raised_in_the_period_open_nothing_new(config):
    states: dict = {}
    first = take(config, states, commands(config, [cap("w1", "W", WARNED)], WARNED + timedelta(seconds=5)))
    opened = {t.ticket_id: t.model_dump_json() for o in first for t in o.tickets}
    # The same places seen by another worker a little later, after a second warning and a level raised by
    # the storm's readings: the same period (named by its start), the same keys, no new ticket.
    records = [cap("w1", "W", WARNED), cap("w2", "V", WARNED + timedelta(hours=1))]
    level = {"rainstorm_red@station-1": [ResponseChange(at=WARNED + timedelta(minutes=40), level="II",
                                                        reason="雨量站 red", trigger="rainstorm_red", by="pipeline")]}
    later = commands(config, records, WARNED + timedelta(hours=2), histories=level)
    assert [c.period for c in later] == ["rainstorm@20260831T020000Z"] * 2
    again = take(config, states, later)
    assert [o.verdict for o in again] == [Verdict.replayed, Verdict.replayed] and all(o.counts == () for o in again)
    assert {t.ticket_id: t.model_dump_json() for o in again for t in o.tickets} == opened


def test_the_next_storm_is_a_new_period_with_tickets_of_its_own(config):
    states: dict = {}
    storm1 = [cap("w1", "W", WARNED), cap("w2", "W", WARNED + timedelta(hours=3), msg_type="Cancel", kind=None)]
    first = take(config, states, commands(config, storm1, WARNED + timedelta(seconds=5)))
    storm2 = [*storm1, cap("x1", "X", WARNED + timedelta(days=2))]
    second = take(config, states, commands(config, storm2, WARNED + timedelta(days=2, seconds=5)))
    assert [o.verdict for o in second] == [Verdict.applied, Verdict.applied]
    assert not {t.ticket_id for o in first for t in o.tickets} & {t.ticket_id for o in second for t in o.tickets}


def test_a_level_raised_without_a_cap_warning_opens_them_too(config):
    raised = {MANUAL: [ResponseChange(at=WARNED, level="III", reason="暴雨", trigger=MANUAL, by="ops_centre",
                                       hazard=Hazard.flood)]}
    found = commands(config, [], WARNED + timedelta(minutes=1), histories=raised)
    assert [c.period for c in found] == ["rainstorm@20260831T020000Z"] * 2


def test_a_preventive_ticket_is_not_a_report_at_its_place(config):
    """Its facts say it is not a report, so it never counts towards the place it was opened for."""
    [outcome, _] = take(config, {}, commands(config, [cap("w1", "W", WARNED)], WARNED + timedelta(seconds=5)))
    [ticket] = outcome.tickets
    facts = performance.stored_facts(performance.gauge_facts(ticket))
    assert facts.task and hotspots.sightings({ticket.ticket_id: facts}) == []


# ------------------------------------------------------------------ rules.yaml `preventive`

def test_the_shipped_rules_answer_rainstorms_and_typhoons_with_blue_tickets():
    shipped = load_config(CONFIG_DIR).rules.preventive
    assert [(r.warning, r.severity) for r in shipped] == [("rainstorm", Severity.blue), ("typhoon", Severity.blue)]
    assert shipped[0].categories[WATER] == "积水"


@pytest.mark.parametrize("change, error", [
    (lambda d: d["preventive"].append(dict(d["preventive"][0])), "rules.yaml: preventive: warnings listed twice: rainstorm"),
    (lambda d: d["preventive"][0]["categories"].update(typhoon="台风"),
     "rules.yaml: preventive: rule 0 (rainstorm): not among hotspots.categories: typhoon"),
    (lambda d: d["preventive"][0].update(warning="hail"), "rules.yaml: preventive.0.warning: Input should be 'rainstorm' or 'typhoon'"),
    (lambda d: d["preventive"][0].update(categories={}),
     "rules.yaml: preventive.0.categories: Dictionary should have at least 1 item after validation, not 0"),
    (lambda d: d["preventive"][0].update(severity="purple"),
     "rules.yaml: preventive.0.severity: Input should be 'red', 'orange', 'yellow' or 'blue'"),
    (lambda d: d["preventive"][1]["categories"].update(flood_waterlogging=""),
     "rules.yaml: preventive.1.categories.flood_waterlogging: String should have at least 1 character"),
    (lambda d: d["preventive"][0].update(colour="blue"), "rules.yaml: preventive.0.colour: Extra inputs are not permitted"),
])
def test_bad_preventive_rules_are_refused_with_exact_errors(copy, change, error):
    path = copy / "rules.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(copy)
    assert info.value.errors == [error]
