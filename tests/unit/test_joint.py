"""Joint handling (主办/协办) and disputed dispatch (派单异议): supporting parts with their own deadlines, verify
held until every part's feedback (or overridden with a reason), a dispute upheld or reassigned, and the KPIs.

Deadlines (routing.yaml): orange accept 30 min, resolve 8 h; road_obstruction is led by traffic_police with
city_management supporting; disputes are ruled within 2 h.
"""
from __future__ import annotations

from datetime import timedelta

import pytest

from handlers import escalation, joint, lifecycle, response, wording
from handlers.lifecycle import Verdict
from handlers.performance import rows
from schemas.accounts import Actor, UserRole
from schemas.enums import OPS_CENTRE, Category, Escalation, Severity, Source, TicketStatus
from schemas.records import HistoryEntry, HistoryKind, Ruling, SupportStatus, Ticket
from tests.unit.conftest import NOW
from tests.unit.test_lifecycle import A, applied, event, make_incident, minutes, new_ticket, rejected

TP, CM, FC, ENV = "traffic_police", "city_management", "flood_control", "environment"
K = HistoryKind
S = TicketStatus


def obstruction(config) -> Ticket:
    """A road obstruction: routing.yaml gives it city_management's support from the start."""
    return new_ticket(config, make_incident(category=Category.road_obstruction, source=Source.traffic))


def accident(config) -> Ticket:
    """A traffic accident: traffic_police alone."""
    return new_ticket(config)


def resolved(config, t: Ticket, at: float = 30) -> Ticket:
    t = applied(config, t, event(A.accept, TP, minutes(at - 20)))
    return applied(config, t, event(A.resolve, TP, minutes(at), note="road cleared"))


# ------------------------------------------------------------------ supporting parts

def test_a_category_routed_with_support_opens_with_the_parts_and_their_deadlines(config):
    t = obstruction(config)
    assert t.department == TP
    [part] = t.support
    assert (part.department, part.status, part.asked_at) == (CM, SupportStatus.asked, NOW)
    assert (part.accept_due, part.due) == (NOW + timedelta(minutes=30), NOW + timedelta(hours=8))
    # The supporting department sees the ticket in its inbox, after the lead.
    assert t.inboxes[:2] == [TP, CM]
    assert accident(config).support == []


def test_the_centre_adds_support_with_deadlines_counted_from_when_it_asks(config):
    t = applied(config, accident(config), event(A.add_support, OPS_CENTRE, minutes(20), departments=[CM, FC],
                                                note="封路并清障"))
    assert [p.department for p in t.support] == [CM, FC]
    assert {(p.accept_due, p.due) for p in t.support} == {(minutes(50), minutes(20 + 8 * 60))}
    entry = t.history[-1]
    assert (entry.kind, entry.departments, entry.note) == (K.support_added, [CM, FC], "封路并清障")
    assert set(t.inboxes) >= {TP, CM, FC}


@pytest.mark.parametrize(("actor", "fields", "why"), [
    (TP, {"departments": [CM]}, "only the operations centre"),
    (OPS_CENTRE, {"departments": []}, "needs 'departments'"),
    (OPS_CENTRE, {"departments": ["nowhere"]}, "unknown department"),
    (OPS_CENTRE, {"departments": [TP]}, "leads this ticket"),
    (OPS_CENTRE, {"departments": [CM]}, "already supports"),
])
def test_adding_support_is_the_centres_and_names_new_departments(config, actor, fields, why):
    assert why in rejected(config, obstruction(config), event(A.add_support, actor, minutes(5), **fields))


def test_a_supporting_department_accepts_then_gives_feedback_on_its_own_part(config):
    t = obstruction(config)
    assert "accept your part" in rejected(config, t, event(A.support_feedback, CM, minutes(3), note="done"))
    t = applied(config, t, event(A.support_accept, CM, minutes(5)))
    [part] = t.support
    assert (part.status, part.accepted_at) == (SupportStatus.accepted, minutes(5))
    assert "already accepted" in rejected(config, t, event(A.support_accept, CM, minutes(6)))
    assert "needs a note" in rejected(config, t, event(A.support_feedback, CM, minutes(7)))
    t = applied(config, t, event(A.support_feedback, CM, minutes(40), note="障碍物已清走"))
    [part] = t.support
    assert (part.status, part.feedback, part.fed_back_at) == (SupportStatus.fed_back, "障碍物已清走", minutes(40))
    assert joint.on_time(part)
    assert [h.kind for h in t.history[-2:]] == [K.support_accepted, K.support_feedback]
    assert t.history[-1].department == CM
    # The lead's own status never moved.
    assert t.status is S.dispatched


def climbed(config, t: Ticket, stage: str, step: Escalation, department: str | None = None) -> Ticket:
    """The ticket after the escalation timer takes that step of its ladder when it falls due."""
    [due] = [s for s in escalation.ladder(config, t) if (s.stage, s.step, s.department) == (stage, step, department)]
    ev = escalation.escalation_event(t, due, due.at)
    outcome = lifecycle.apply(config, t, ev, ev.at)
    assert outcome.verdict is Verdict.applied, outcome.reason
    return outcome.ticket


def test_each_supporting_part_climbs_a_ladder_of_its_own_deadlines(config):
    t = applied(config, obstruction(config), event(A.add_support, OPS_CENTRE, minutes(0), departments=[FC]))
    parts = {(s.stage, s.department) for s in escalation.ladder(config, t) if s.department}
    assert parts == {(stage, d) for stage in ("support_accept", "support_feedback") for d in (CM, FC)}
    # 催办 with a fifth of the 30 minutes to accept left, for that department alone.
    [remind] = [s for s in escalation.ladder(config, t)
                if (s.stage, s.step, s.department) == ("support_accept", Escalation.reminded, CM)]
    assert remind.at == minutes(24)
    t = climbed(config, t, "support_accept", Escalation.escalated, CM)
    entry = t.history[-1]
    assert (entry.kind, entry.stage, entry.department, entry.due) == (K.escalated, "support_accept", CM, minutes(30))
    assert wording.history_text(config.district, entry).endswith("系统自动督办城管执法队：协办签收时限 5月12日 10:00")
    # FC's own step is still to take; CM's accept ends CM's accept ladder, its feedback ends the rest.
    assert any(s.department == FC and s.stage == "support_accept" for s in escalation.due_steps(config, t, minutes(31)))
    t = applied(config, t, event(A.support_accept, CM, minutes(31)))
    t = applied(config, t, event(A.support_feedback, CM, minutes(32), note="已清障"))
    assert {s.department for s in escalation.ladder(config, t) if s.department} == {FC}


def test_a_dispute_waiting_too_long_climbs_the_centres_ladder(config):
    t = climbed(config, disputed(config), "ruling", Escalation.escalated)
    entry = t.history[-1]
    assert (entry.stage, entry.department, entry.due) == ("ruling", OPS_CENTRE, t.dispute.rule_due)
    assert wording.history_text(config.district, entry).endswith("系统自动督办街道智慧运行中心：异议裁定时限 5月12日 11:40")
    ruled = applied(config, t, event(A.rule, OPS_CENTRE, minutes(140), decision=Ruling.uphold))
    assert {s.stage for s in escalation.ladder(config, ruled)} == {"accept", "resolve"}


def test_only_a_supporting_department_acts_on_a_part(config):
    t = obstruction(config)
    for actor in (TP, FC, OPS_CENTRE):
        assert "only a supporting department" in rejected(config, t, event(A.support_accept, actor, minutes(5)))


def test_verify_is_refused_until_every_supporting_department_has_given_feedback(config):
    t = applied(config, obstruction(config), event(A.add_support, OPS_CENTRE, minutes(1), departments=[FC]))
    t = resolved(config, t)
    why = rejected(config, t, event(A.verify, OPS_CENTRE, minutes(35), passed=True))
    assert "城管执法队、街道三防办尚未反馈" in why and "city_management, flood_control" in why
    for department in (CM, FC):
        t = applied(config, t, event(A.support_accept, department, minutes(36)))
        t = applied(config, t, event(A.support_feedback, department, minutes(37), note="已配合"))
    # A rework needs no feedback; closing needed all of it, and now has it.
    t = applied(config, t, event(A.verify, OPS_CENTRE, minutes(40), passed=True))
    assert t.status is S.closed
    assert t.history[-1].overridden is None


def test_a_rework_is_not_held_by_missing_feedback(config):
    t = resolved(config, obstruction(config))
    t = applied(config, t, event(A.verify, OPS_CENTRE, minutes(35), passed=False, note="still blocked"))
    assert t.status is S.dispatched


def test_the_centre_overrides_missing_feedback_with_a_reason_on_the_record(config):
    t = resolved(config, obstruction(config))
    assert "needs a note" in rejected(config, t, event(A.verify, OPS_CENTRE, minutes(35), passed=True,
                                                        override=True))
    t = applied(config, t, event(A.verify, OPS_CENTRE, minutes(36), passed=True, override=True,
                                 note="城管电话确认已清障"))
    assert t.status is S.closed
    closing = t.history[-1]
    assert (closing.kind, closing.overridden, closing.note) == (K.closed, [CM], "城管电话确认已清障")


def test_support_parts_on_time_count_for_the_supporting_department(config):
    late = applied(config, obstruction(config), event(A.support_accept, CM, minutes(5)))
    late = applied(config, late, event(A.support_feedback, CM, minutes(9 * 60), note="late"))
    prompt = applied(config, obstruction(config).model_copy(update={"ticket_id": "T-2"}),
                     event(A.support_accept, CM, minutes(5)))
    prompt = applied(config, prompt, event(A.support_feedback, CM, minutes(60), note="ok"))
    waiting = obstruction(config).model_copy(update={"ticket_id": "T-3"})  # due 8 h in: not due at 2 h
    table = rows([late, prompt, waiting], NOW - timedelta(hours=1), NOW + timedelta(hours=1), minutes(10 * 60))
    row = table[CM]
    assert (row.support_parts, row.support_due, row.support_on_time) == (3, 3, 1)
    assert row.rates["support_on_time"] == 0.3333
    assert row.dispatched == 0  # the tickets are traffic_police's
    assert rows([waiting], NOW - timedelta(hours=1), NOW + timedelta(hours=1), minutes(60))[CM].support_due == 0


# ------------------------------------------------------------------ disputes

def disputed(config, suggest: str | None = CM) -> Ticket:
    t = applied(config, accident(config), event(A.accept, TP, minutes(5)))
    return applied(config, t, event(A.dispute, TP, minutes(10), note="系路面塌陷，非交通事故", department=suggest))


def test_a_dispute_waits_for_the_centres_ruling(config):
    t = disputed(config)
    assert (t.status, t.watchers, t.department) == (S.returned, [OPS_CENTRE], TP)
    assert t.dispute is not None
    assert (t.dispute.department, t.dispute.suggest, t.dispute.reason) == (TP, CM, "系路面塌陷，非交通事故")
    assert t.dispute.rule_due == minutes(10) + timedelta(hours=2)
    entry = t.history[-1]
    assert (entry.kind, entry.department, entry.actor) == (K.disputed, CM, TP)
    # Nothing runs on the department's deadlines while the centre decides: only the centre's ruling climbs.
    assert {(s.stage, s.due) for s in escalation.ladder(config, t)} == {("ruling", t.dispute.rule_due)}


@pytest.mark.parametrize(("actor", "fields", "why"), [
    (TP, {}, "needs a reason"),
    (TP, {"note": "x", "department": TP}, "another department"),
    (TP, {"note": "x", "department": "nowhere"}, "unknown department"),
    (OPS_CENTRE, {"note": "x"}, "only the owning department"),
    (FC, {"note": "x"}, "only the owning department"),
])
def test_only_the_owner_disputes_with_a_reason(config, actor, fields, why):
    assert why in rejected(config, accident(config), event(A.dispute, actor, minutes(5), **fields))


def test_a_dispute_upheld_sends_the_ticket_back_with_fresh_deadlines(config):
    t = disputed(config)
    ruled = applied(config, t, event(A.rule, OPS_CENTRE, minutes(30), decision=Ruling.uphold, note="属交通事故"))
    assert (ruled.status, ruled.department, ruled.dispute, ruled.accepted_at) == (S.dispatched, TP, None, None)
    assert (ruled.accept_due, ruled.resolve_due) == (minutes(60), minutes(30 + 8 * 60))
    entry = ruled.history[-1]
    assert (entry.kind, entry.department, entry.note) == (K.dispute_upheld, TP, "属交通事故")
    # The ladder runs on the new deadlines, from the ruling.
    assert escalation.deadlines_set_at(ruled) == minutes(30)
    assert "cannot rule a ticket that is dispatched" in rejected(
        config, ruled, event(A.rule, OPS_CENTRE, minutes(31), decision=Ruling.uphold))


def test_a_dispute_ruled_for_reassigns_the_ticket_to_the_named_department(config):
    t = disputed(config)
    ruled = applied(config, t, event(A.rule, OPS_CENTRE, minutes(30), decision=Ruling.reassign, department=ENV))
    assert (ruled.status, ruled.department, ruled.dispute) == (S.dispatched, ENV, None)
    assert ruled.accept_due == minutes(60)
    entry = ruled.history[-1]
    assert (entry.kind, entry.from_department, entry.department) == (K.dispute_reassigned, TP, ENV)


def test_a_ticket_reassigned_to_a_supporting_department_makes_it_the_lead_without_a_part(config):
    t = applied(config, accident(config), event(A.add_support, OPS_CENTRE, minutes(1), departments=[CM, FC]))
    t = applied(config, t, event(A.dispute, TP, minutes(2), note="路面塌陷", department=CM))
    ruled = applied(config, t, event(A.rule, OPS_CENTRE, minutes(3), decision=Ruling.reassign, department=CM))
    assert (ruled.department, [p.department for p in ruled.support]) == (CM, [FC])
    moved = applied(config, ruled, event(A.redispatch, OPS_CENTRE, minutes(4), department=FC))
    assert (moved.department, moved.support) == (FC, [])


@pytest.mark.parametrize(("actor", "fields", "why"), [
    (TP, {"decision": Ruling.uphold}, "only the operations centre"),
    (OPS_CENTRE, {}, "needs 'decision'"),
    (OPS_CENTRE, {"decision": Ruling.reassign}, "needs 'department'"),
    (OPS_CENTRE, {"decision": Ruling.reassign, "department": TP}, "uphold the dispatch"),
    (OPS_CENTRE, {"decision": Ruling.reassign, "department": "nowhere"}, "unknown department"),
    (OPS_CENTRE, {"decision": Ruling.uphold, "department": CM}, "name no other"),
])
def test_a_ruling_is_the_centres_and_well_formed(config, actor, fields, why):
    assert why in rejected(config, disputed(config), event(A.rule, actor, minutes(30), **fields))


def test_a_ruling_is_a_persons_not_a_service_credentials(config):
    token = Actor(user_id="service:ops_centre", name="运行中心接口", department=OPS_CENTRE, role=UserRole.service)
    assert "not a service credential" in rejected(config, disputed(config), event(
        A.rule, OPS_CENTRE, minutes(30), decision=Ruling.uphold, user=token))


def test_a_redispatch_of_a_disputed_ticket_is_the_ruling_it_amounts_to(config):
    # The board's 改派 on a disputed ticket must not clear the dispute unruled: the KPIs count it.
    away = applied(config, disputed(config), event(A.redispatch, OPS_CENTRE, minutes(30), department=ENV))
    assert (away.status, away.department, away.dispute) == (S.dispatched, ENV, None)
    assert (away.history[-1].kind, away.history[-1].from_department) == (K.dispute_reassigned, TP)
    back = applied(config, disputed(config), event(A.redispatch, OPS_CENTRE, minutes(30), department=TP))
    assert (back.department, back.dispute, back.history[-1].kind) == (TP, None, K.dispute_upheld)
    table = rows([away, back.model_copy(update={"ticket_id": "T-2"})], NOW - timedelta(hours=1),
                 NOW + timedelta(hours=1), minutes(60))
    assert (table[TP].disputes, table[TP].disputes_ruled, table[TP].disputes_upheld) == (2, 2, 1)
    token = Actor(user_id="service:ops_centre", name="运行中心接口", department=OPS_CENTRE, role=UserRole.service)
    assert "not a service credential" in rejected(config, disputed(config), event(
        A.redispatch, OPS_CENTRE, minutes(30), department=ENV, user=token))


def test_a_ticket_that_is_not_disputed_is_not_ruled_on(config):
    returned = applied(config, accident(config), event(A.return_, TP, minutes(3), note="not ours"))
    assert "no dispute is pending" in rejected(config, returned, event(A.rule, OPS_CENTRE, minutes(4),
                                                                       decision=Ruling.uphold))


def test_disputes_count_for_the_disputing_department_with_the_share_upheld(config):
    upheld = applied(config, disputed(config), event(A.rule, OPS_CENTRE, minutes(30), decision=Ruling.uphold))
    moved = applied(config, disputed(config).model_copy(update={"ticket_id": "T-2"}),
                    event(A.rule, OPS_CENTRE, minutes(30), decision=Ruling.reassign, department=CM))
    pending = disputed(config).model_copy(update={"ticket_id": "T-3"})
    table = rows([upheld, moved, pending], NOW - timedelta(hours=1), NOW + timedelta(hours=1), minutes(60))
    assert (table[TP].disputes, table[TP].disputes_ruled, table[TP].disputes_upheld) == (3, 2, 1)
    assert table[TP].rates["disputes_upheld"] == 0.5
    assert (table[CM].disputes, table[CM].dispatched) == (0, 1)  # it holds the reassigned ticket now


def test_a_replayed_ruling_changes_nothing(config):
    t = disputed(config)
    ruling = event(A.rule, OPS_CENTRE, minutes(30), decision=Ruling.uphold).model_copy(update={"ticket_id": t.ticket_id})
    once = lifecycle.apply(config, t, ruling, ruling.at)
    again = lifecycle.apply(config, once.ticket, ruling, ruling.at)
    assert (once.verdict, again.verdict, again.ticket) == (Verdict.applied, Verdict.replayed, once.ticket)


def test_supporting_parts_are_hurried_by_the_response_level_like_the_lead(config):
    entry = HistoryEntry(at=NOW, by="pipeline", action="response", note="II级应急响应", kind=K.response, level="II")
    under = response.under(obstruction(config), "II", config.rules.response.levels["II"], NOW, entry)
    [part] = under.support
    assert (part.accept_due, part.due) == (NOW + timedelta(minutes=15), NOW + timedelta(hours=4))
    assert (under.accept_due, under.resolve_due) == (part.accept_due, part.due)  # same category, same spans
    # A part the centre asks for later, on a ticket under the level, runs on the level's deadlines from then.
    added = applied(config, accident(config).model_copy(update={"response_level": "II"}),
                    event(A.add_support, OPS_CENTRE, minutes(20), departments=[CM]))
    assert (added.support[0].accept_due, added.support[0].due) == (minutes(35), minutes(20 + 4 * 60))
    # A part already fed back keeps its record as it was.
    done = obstruction(config).model_copy(update={"support": [part.model_copy(
        update={"status": SupportStatus.fed_back, "due": NOW + timedelta(hours=8)})]})
    assert response.under(done, "I", config.rules.response.levels["I"], NOW, entry).support == done.support


def test_a_red_tickets_parts_run_on_red_deadlines(config):
    red = new_ticket(config, make_incident(category=Category.road_obstruction, severity=Severity.red))
    [part] = red.support
    assert (part.accept_due, part.due) == (NOW + timedelta(minutes=10), NOW + timedelta(hours=2))
