"""The emergency-response level: triggers with a hold, the centre's decisions, and the effects on new tickets."""
from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest

from handlers import response, ticketing
from handlers.base import Context
from handlers.intake import to_incident
from handlers.lifecycle import Verdict
from handlers.ticketing import Around
from schemas.enums import Severity, TicketStatus
from schemas.response import MANUAL, LevelDecision, ResponseChange
from tests.unit.conftest import SHANGHAI

T0 = datetime(2026, 9, 14, 8, 0, tzinfo=SHANGHAI)
HOLD = timedelta(minutes=30)  # rules.yaml's response.hold (test_the_shipped_hold_is_the_one_tested)
TYPHOON_KEY = "flood:typhoon:TY-HW"


def typhoon(config, signal: str, at: datetime):
    raw = json.dumps({"station_id": "TY-HW", "kind": "typhoon_signal", "signal": signal, "lat": 22.52,
                      "lon": 113.93, "observed_at": at.isoformat()}).encode()
    return to_incident("flood", raw, Context(config, at, {}))


def waterlogging(config, cm: float, at: datetime, station: str = "JS-WH-03"):
    raw = json.dumps({"station_id": station, "kind": "waterlogging", "value": cm, "lat": 22.512, "lon": 113.925,
                      "observed_at": at.isoformat()}).encode()
    return to_incident("flood", raw, Context(config, at, {}))


def run_signals(config, sequence):
    """Feed typhoon signals through the ticket step on their key; the histories it publishes."""
    state, published = None, {}
    for signal, at in sequence:
        outcome = ticketing.step(config, state, typhoon(config, signal, at), TYPHOON_KEY, Around(response=published))
        state = outcome.state
        published = {**published, **outcome.response}
    return state, published


def test_the_shipped_hold_is_the_one_tested(config):
    assert response.hold_of(config) == HOLD


def test_yellow_then_orange_then_lowered_raises_the_level_and_ends_it_after_the_hold(config):
    # The signal station reports every 15 minutes: yellow, then orange from the 3rd report, then blue.
    every = HOLD / 2
    _, published = run_signals(config, [*(("yellow", T0 + every * n) for n in range(3)),
                                        *(("orange", T0 + every * n) for n in range(3, 6)),
                                        ("blue", T0 + every * 6)])
    level = lambda at: response.in_force(published, at, HOLD)  # noqa: E731
    assert level(T0 - timedelta(seconds=1)) is None
    assert level(T0).level == "III" and level(T0).change.trigger == "typhoon_yellow"
    assert level(T0 + every * 3).level == "II"
    # Why, in the reading's own words (its title names the colour), never an enum value after them.
    reason = level(T0 + every * 3).change.reason
    assert "橙色" in reason and "(orange)" not in reason
    # Lowered to blue: both rules let go then, and their levels hold a hold more.
    lowered = T0 + every * 6
    assert level(lowered + HOLD - timedelta(seconds=1)).level == "II"
    assert level(lowered + HOLD) is None
    assert set(published) == {f"typhoon_yellow@{TYPHOON_KEY}", f"typhoon_orange@{TYPHOON_KEY}"}


def test_the_same_signal_again_changes_nothing_and_a_replay_republishes_the_histories(config):
    state, published = run_signals(config, [("yellow", T0)])
    again = ticketing.step(config, state, typhoon(config, "yellow", T0 + timedelta(minutes=10)), TYPHOON_KEY,
                           Around(response=published))
    assert again.response == published  # unchanged: no new change, the same histories
    replay = ticketing.step(config, again.state, typhoon(config, "yellow", T0), TYPHOON_KEY, Around(response={}))
    assert replay.verdict is Verdict.replayed and replay.response == published


def test_a_manual_level_has_no_hold_and_the_most_severe_level_wins(config):
    _, published = run_signals(config, [("yellow", T0)])
    manual = [ResponseChange(at=T0 + HOLD / 4, level="I", reason="区指挥部决定", trigger=MANUAL, by="ops_centre"),
              ResponseChange(at=T0 + HOLD / 2, level=None, reason="解除", trigger=MANUAL, by="ops_centre")]
    histories = {**published, MANUAL: manual}
    assert response.in_force(histories, T0 + HOLD / 3, HOLD).level == "I"
    assert response.in_force(histories, T0 + HOLD / 2, HOLD).level == "III"


def test_under_level_iii_a_20_cm_waterlogging_reading_is_graded_one_step_higher_with_halved_deadlines(config):
    at = T0 + HOLD / 2
    usual = ticketing.step(config, None, waterlogging(config, 20, at), "k1").tickets[0]
    _, published = run_signals(config, [("yellow", T0)])
    under = ticketing.step(config, None, waterlogging(config, 20, at), "k1", Around(response=published)).tickets[0]
    assert (usual.severity, under.severity) == (Severity.yellow, Severity.orange)
    assert under.response_level == "III" and usual.response_level is None
    orange_usual = ticketing.step(config, None, waterlogging(config, 35, at), "k2").tickets[0]
    # Halved, but the accept time not below the level's 10-minute floor.
    assert under.accept_due - under.dispatched_at == max((orange_usual.accept_due - orange_usual.dispatched_at) / 2,
                                                         timedelta(minutes=10))
    assert under.resolve_due - under.dispatched_at == (orange_usual.resolve_due - orange_usual.dispatched_at) / 2
    assert under.history[-1].action == "response" and "III级应急响应" in under.history[-1].note


def test_a_red_ticket_under_a_level_gets_its_watchers(config):
    _, published = run_signals(config, [("orange", T0)])
    ticket = ticketing.step(config, None, waterlogging(config, 60, T0 + timedelta(minutes=5)), "k",
                            Around(response=published)).tickets[0]
    assert ticket.severity is Severity.red and "district_leadership" in ticket.watchers


@pytest.mark.parametrize("factor, floor, span, expected", [
    (0.5, "10m", timedelta(hours=2), timedelta(hours=1)),
    (0.25, "10m", timedelta(minutes=20), timedelta(minutes=10)),   # the floor
    (0.25, "10m", timedelta(minutes=6), timedelta(minutes=6)),     # never longer than the usual
])
def test_deadlines_shrink_to_their_factor_but_not_below_the_floor(factor, floor, span, expected):
    from schemas.response import LevelEffects
    effect = LevelEffects(deadline_factor=factor, deadline_floor=floor)
    assert response.shortened(T0, T0 + span, effect) - T0 == expected


def test_a_rule_lets_go_a_hold_after_its_last_supporting_report_and_is_kept_up_by_reports(config):
    # Red rain at one gauge, a report every quarter hold, then the gauge is back to normal (sends nothing).
    state, published = None, {}
    for n in range(7):
        at = T0 + HOLD / 4 * n
        raw = json.dumps({"station_id": "YL-HB-01", "kind": "rainfall", "value": 120.0, "lat": 22.51, "lon": 113.91,
                          "observed_at": at.isoformat()}).encode()
        incident = to_incident("flood", raw, Context(config, at, {}))
        outcome = ticketing.step(config, state, incident, incident.dedup_key, Around(response=published))
        state, published = outcome.state, {**published, **outcome.response}
    [history] = published.values()
    # Written again once half a hold has passed: every other report.
    assert [c.at for c in history] == [T0 + HOLD / 2 * n for n in range(4)]
    last = T0 + HOLD * 1.5
    assert response.in_force(published, last + HOLD * 2 - timedelta(seconds=1), HOLD).level == "II"
    assert response.in_force(published, last + HOLD * 2, HOLD) is None


@pytest.mark.parametrize("volume", ["due", "generate"])
def test_the_rainstorm_scenario_raises_the_level_and_lets_it_fall_before_the_next_storm(config, volume):
    """`make run SCENARIO=rainstorm` as the trigger rules see it: the simulator's flood readings (each
    station's at its interval, as `soc dev` sends them by default; or the mix at 5 a second, as with
    `--rate 5`), through intake and the ticket step on their own keys, for 70 minutes of its hourly cycle."""
    from streams.ops.simulator import Simulator

    sim = Simulator(3, "rainstorm", config.district, start=T0)
    categories = {t.category for t in config.rules.response.triggers}
    states, published, levels = {}, {}, {}
    for tick in range(70 * 6):
        now = T0 + timedelta(seconds=10 * tick)
        for event in (sim.due(now) if volume == "due" else sim.generate(now, 50)):
            if event.source != "flood" or event.malformed:
                continue
            incident = to_incident("flood", json.dumps(event.payload).encode(), Context(config, now, {}))
            if incident is None or incident.category not in categories:
                continue
            outcome = ticketing.step(config, states.get(incident.dedup_key), incident, incident.dedup_key,
                                     Around(response=published))
            states[incident.dedup_key] = outcome.state
            published.update(outcome.response)
        found = response.in_force(published, now, HOLD)
        levels[tick / 6] = found.level if found else None
    during = [level for minute, level in levels.items() if minute < sim.storm.total_seconds() / 60]
    assert "II" in during and during[0] is None
    calm = sim.storm + sim.calm
    assert levels[(calm - timedelta(minutes=5)).total_seconds() / 60] is None  # fallen before the next storm
    assert levels[69.5] in ("III", "II")  # and raised again by it
    # docs/silences.md's timings (minutes into the cycle), each within a minute.
    changes = [(minute, level) for (minute, level), before in zip(levels.items(), [None, *levels.values()])
               if level != before]
    expected = {"due": [(4, "III"), (6, "II"), (43, "III"), (45, None), (64, "III"), (66, "II")],
                "generate": [(3.5, "III"), (6, "II"), (43.5, "III"), (45, None), (63.5, "III"), (65, "II")]}[volume]
    assert [level for _, level in changes] == [level for _, level in expected]
    assert all(abs(minute - want) <= 1 for (minute, _), (want, _) in zip(changes, expected)), changes


def _manual(level, at):
    return {MANUAL: [ResponseChange(at=at, level=level, reason="区指挥部决定", trigger=MANUAL, by="ops_centre")]}


def test_a_retroactive_level_shortens_the_deadlines_of_a_ticket_already_open_once(config):
    opened = ticketing.step(config, None, waterlogging(config, 20, T0), "k1")
    ticket = opened.tickets[0]
    at = T0 + timedelta(minutes=20)
    in_force = response.in_force(_manual("I", at), at, HOLD)
    event = response.retroactive_event(config, ticket, in_force, at + timedelta(seconds=5))
    assert event is not None and event.level == "I"
    outcome = ticketing.step(config, opened.state, event, "k1")
    [changed] = outcome.tickets
    effect = config.rules.response.levels["I"]
    # From the ticket's own start, not from the moment the level came: a quarter of each span.
    assert changed.accept_due == response.shortened(T0, ticket.accept_due, effect) < ticket.accept_due
    assert changed.resolve_due - T0 == (ticket.resolve_due - T0) * effect.deadline_factor
    assert changed.response_level == "I" and changed.version == ticket.version + 1
    assert changed.history[-1].action == "response" and "追溯" in changed.history[-1].note
    # The same command again (a replay, or a lost send sent again) changes nothing.
    again = ticketing.step(config, outcome.state, event, "k1")
    assert again.verdict is Verdict.replayed and again.tickets == (changed,)
    # Once under the level, the sweep has nothing more to send for it.
    assert response.retroactive_event(config, changed, in_force, at + timedelta(minutes=1)) is None


def test_a_level_not_marked_retroactive_leaves_open_tickets_alone_and_a_closed_ticket_is_never_hurried(config):
    opened = ticketing.step(config, None, waterlogging(config, 20, T0), "k1")
    ticket = opened.tickets[0]
    at = T0 + timedelta(minutes=20)
    assert response.retroactive_event(config, ticket, response.in_force(_manual("III", at), at, HOLD), at) is None
    level_i = response.in_force(_manual("I", at), at, HOLD)
    closed = ticket.model_copy(update={"status": TicketStatus.closed})
    assert response.retroactive_event(config, closed, level_i, at) is None
    # A command that arrives after the ticket closed is refused, not applied.
    event = response.retroactive_event(config, ticket, level_i, at)
    state = opened.state.model_copy(update={"tickets": {ticket.ticket_id: closed}})
    assert ticketing.step(config, state, event, "k1").verdict is Verdict.refused


def test_the_batch_levels_answer_as_in_force_over_the_triggers_and_the_inputs_own_histories():
    """response.Levels (the ticket step's per-batch cache) against in_force({**histories, **own}) on
    random triggers: rules with holds, the centre's decisions, equal times across triggers, an input's
    own trigger replacing its earlier history, asked at every change, every end and between."""
    import random

    rng = random.Random(27)
    t0 = datetime(2026, 7, 1, 8, 0, tzinfo=SHANGHAI)
    levels_of = [None, "IV", "III", "II", "I"]

    def history(key: str, n: int) -> list[ResponseChange]:
        times = sorted(t0 + timedelta(minutes=rng.choice(range(0, 300, 5))) for _ in range(n))
        return [ResponseChange(at=at, level=rng.choice(levels_of), trigger=key.split("@")[0], by="pipeline",
                               reason="r") for at in times]

    for _ in range(40):
        keys = [MANUAL] + [f"rain@flood:rain:G{i}" for i in range(rng.randint(1, 6))]
        histories = {k: history(k, rng.randint(1, 5)) for k in keys}
        levels = response.Levels()
        for _ in range(30):
            own_key = rng.choice([*keys[1:], "rain@flood:rain:NEW"])
            own = {own_key: [*histories.get(own_key, []), *history(own_key, 1)]} if rng.random() < 0.7 else {}
            at = t0 + timedelta(minutes=rng.choice(range(-10, 420, 5)))
            assert levels.in_force(histories, at, HOLD, own) == response.in_force({**histories, **own}, at, HOLD)
            if own and rng.random() < 0.3:  # the batch goes on with the level this input published
                histories = {**histories, **own}


# ------------------------------------------------------------------ people's decisions through the ticket step

def _decision(level, at, by="张值班", event_id=None):
    change = ResponseChange(at=at, level=level, reason="区防指决定", trigger=MANUAL, by=by)
    return LevelDecision(event_id=event_id or f"api-{level}-{at.timestamp()}", change=change)


def test_two_decisions_made_at_once_are_both_kept_in_time_order(config):
    # Two duty officers on two workers, each having read the same history: before, each wrote the history it
    # had read plus its own decision, and the later write lost the earlier decision.
    earlier = [_decision("III", T0).change]
    around = Around(response={MANUAL: earlier})
    first = ticketing.step(config, None, _decision("I", T0 + timedelta(seconds=2), by="李值班"), response.DECISIONS_KEY,
                           around)
    second = ticketing.step(config, first.state, _decision("II", T0 + timedelta(seconds=1)), response.DECISIONS_KEY,
                            around)
    assert first.verdict is second.verdict is Verdict.applied
    assert [c.level for c in second.response[MANUAL]] == ["III", "II", "I"]
    assert response.in_force(second.response, T0 + timedelta(seconds=3), HOLD).level == "I"


@pytest.mark.parametrize("lost", ["nothing", "state", "published", "both"])
def test_a_decision_replayed_with_any_of_its_outputs_lost_publishes_the_same_history(config, lost):
    earlier = {MANUAL: [_decision("III", T0).change]}
    decision = _decision("II", T0 + timedelta(minutes=5))
    once = ticketing.step(config, None, decision, response.DECISIONS_KEY, Around(response=earlier))
    state = None if lost in ("state", "both") else once.state
    published = earlier if lost in ("published", "both") else once.response
    again = ticketing.step(config, state, decision, response.DECISIONS_KEY, Around(response=published))
    assert again.response == once.response
    assert again.verdict is (Verdict.applied if lost == "both" else Verdict.replayed)
