"""A ticket's history in people's words: one Chinese (or English) sentence per entry, local time, display
names; never the machine's words (pipeline, dispatched, orange -> red), ids of departments or ISO times."""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from handlers import escalation, lifecycle, wording
from handlers.lifecycle import Verdict
from schemas.accounts import Actor, UserRole
from schemas.enums import OPS_CENTRE, Escalation, Severity
from schemas.evidence import EvidenceStage, MediaType, Photo
from schemas.records import HistoryEntry, HistoryKind, TicketAction, TicketEvent
from tests.unit.test_lifecycle import CENTRE, OWNER, REDISPATCH_TO, A, S, applied, event, in_status, minutes, new_ticket

K = HistoryKind
# 06:23 UTC is 14:23 in the district (Asia/Shanghai).
AT = datetime(2026, 12, 6, 6, 23, 20, 512000, tzinfo=timezone.utc)
DUE = datetime(2026, 12, 6, 7, 0, tzinfo=timezone.utc)
CLERK = Actor(user_id="wang", name="王办事", department="flood_control", role=UserRole.clerk)
OFFICER = Actor(user_id="zhang", name="张值班", department=OPS_CENTRE, role=UserRole.duty_officer)
LEADER = Actor(user_id="li", name="李领导", department="district_leadership", role=UserRole.leader)
ISO = re.compile(r"\d{4}-\d{2}-\d{2}T|[+-]\d{2}:\d{2}\b|\bZ\b")
MACHINE = re.compile(r"pipeline|dispatched|escalat|flood_control|ops_centre|city_management|->|\b(red|orange)\b")


def entry(kind: HistoryKind, **fields) -> HistoryEntry:
    return HistoryEntry(**{"at": AT, "by": "pipeline", "action": kind.value, "kind": kind, **fields})


# Each kind as the handlers write it, and the Chinese sentence people read.
SAID = [
    (entry(K.dispatch, department="flood_control"), "12月6日 14:23 系统派单至街道三防办"),
    (entry(K.occurrence, note="flood-abc"), "12月6日 14:23 系统：同一问题再次报告，已并入本单"),
    (entry(K.severity_raised, note="orange -> red", from_severity=Severity.orange, to_severity=Severity.red),
     "12月6日 14:23 系统将等级由橙色升为红色"),
    (entry(K.reminded, stage="accept", due=DUE, department="flood_control"),
     "12月6日 14:23 系统自动催办街道三防办：签收时限 12月6日 15:00"),
    (entry(K.escalated, stage="resolve", due=DUE, department="flood_control"),
     "12月6日 14:23 系统自动督办街道三防办：办结时限 12月6日 15:00"),
    (entry(K.reported, stage="accept", due=DUE, department="flood_control"),
     "12月6日 14:23 系统自动通报街道三防办：签收时限 12月6日 15:00"),
    (entry(K.accept, by="王办事 (flood_control)", user=CLERK, actor="flood_control"),
     "12月6日 14:23 王办事（街道三防办）签收"),
    (entry(K.resolve, by="王办事", user=CLERK, note="已抽排，联系人13912345678"),
     "12月6日 14:23 王办事（街道三防办）办结：已抽排，联系人139****5678"),
    (entry(K.return_, by="王办事", user=CLERK, note="不属本单位"), "12月6日 14:23 王办事（街道三防办）退回：不属本单位"),
    (entry(K.extension_requested, by="王办事", user=CLERK, until=DUE + timedelta(days=1), note="等抽水泵"),
     "12月6日 14:23 王办事（街道三防办）申请延期至 12月7日 15:00：等抽水泵"),
    (entry(K.extension_approved, by="张值班", user=OFFICER, until=DUE + timedelta(days=1)),
     "12月6日 14:23 张值班（街道智慧运行中心）同意延期至 12月7日 15:00"),
    (entry(K.extension_rejected, by="张值班", user=OFFICER), "12月6日 14:23 张值班（街道智慧运行中心）不同意延期"),
    (entry(K.closed, by="张值班", user=OFFICER), "12月6日 14:23 张值班（街道智慧运行中心）核验通过，工单关闭"),
    (entry(K.rework, by="张值班", user=OFFICER, note="仍有积水"),
     "12月6日 14:23 张值班（街道智慧运行中心）核验未通过，退回返工：仍有积水"),
    (entry(K.redispatch, by="张值班", user=OFFICER, from_department="flood_control", department="city_management"),
     "12月6日 14:23 张值班（街道智慧运行中心）将工单由街道三防办改派至城管执法队"),
    (entry(K.reopen, by="张值班", user=OFFICER, note="群众再次反映"),
     "12月6日 14:23 张值班（街道智慧运行中心）重新打开工单：群众再次反映"),
    (entry(K.comment, by="王办事", user=CLERK, note="已到场"), "12月6日 14:23 王办事（街道三防办）备注：已到场"),
    (entry(K.comment, by="李领导", user=LEADER, note="全力处置"), "12月6日 14:23 李领导（街道办领导）批示：全力处置"),
    (entry(K.acknowledged, by="张值班", user=OFFICER), "12月6日 14:23 张值班（街道智慧运行中心）已知悉"),
    (entry(K.followup, by="张值班", user=OFFICER, result="unsatisfied"),
     "12月6日 14:23 张值班（街道智慧运行中心）回访：不满意，发回重办"),
    (entry(K.related, related_ticket_id="T20261206-ab12", role="cause", rule="rain_waterlogging"),
     "12月6日 14:23 系统关联起因工单 T20261206-ab12"),
    (entry(K.recurred, related_ticket_id="T20261206-cd34"), "12月6日 14:23 问题再次出现，系统已新开工单 T20261206-cd34"),
    (entry(K.response, level="II", note="II级应急响应 (manual)"), "12月6日 14:23 系统按II级应急响应调整时限"),
    (entry(K.silenced, note="opened quietly under silence s-1"), "12月6日 14:23 开单时处于屏蔽期，暂不通知"),
    (entry(K.source_cleared), "12月6日 14:23 监测数据已恢复正常，请核实后办结"),
    (entry(K.device_recovered), "12月6日 14:23 设备已恢复上报"),
    (entry(K.checked, by="王办事", user=CLERK, note="移动泵车到达积水点", item=0, done=True),
     "12月6日 14:23 王办事（街道三防办）完成清单第1项：移动泵车到达积水点"),
    (entry(K.checked, by="王办事", user=CLERK, note="雨水篦子清掏", item=1, done=False),
     "12月6日 14:23 王办事（街道三防办）取消勾选清单第2项：雨水篦子清掏"),
    (entry(K.stood_down, by="张值班", note="雨停，解除Ⅱ级响应"), "12月6日 14:23 张值班宣布预案终止，本任务撤销：雨停，解除Ⅱ级响应"),
    (entry(K.resource_assigned, by="王办事", user=CLERK, note="移动泵车1号（荔园）", resource_id="pump_truck_01"),
     "12月6日 14:23 王办事（街道三防办）调派移动泵车1号（荔园）到本单"),
    (entry(K.resource_released, by="王办事", user=CLERK, note="移动泵车1号（荔园）", resource_id="pump_truck_01"),
     "12月6日 14:23 王办事（街道三防办）撤回移动泵车1号（荔园）"),
    (entry(K.evidence, by="王办事", user=CLERK, note="井盖已更换，联系人13912345678",
           photo=Photo(sha256="ab" * 32, stage=EvidenceStage.after, media_type=MediaType.jpeg, width=4, height=3,
                       bytes=100)),
     "12月6日 14:23 王办事（街道三防办）上传处置后照片：井盖已更换，联系人139****5678"),
    (entry(K.support_added, departments=["traffic_police"]), "12月6日 14:23 系统派交警大队海湾中队协办"),
    (entry(K.support_added, by="张值班", user=OFFICER, departments=["traffic_police", "city_management"],
           note="封路并清障"),
     "12月6日 14:23 张值班（街道智慧运行中心）增派交警大队海湾中队、城管执法队协办：封路并清障"),
    (entry(K.support_accepted, by="王办事", user=CLERK, department="flood_control"),
     "12月6日 14:23 王办事（街道三防办）签收协办任务"),
    (entry(K.support_feedback, by="王办事", user=CLERK, department="flood_control", note="泵车已到，联系人13912345678"),
     "12月6日 14:23 王办事（街道三防办）反馈协办情况：泵车已到，联系人139****5678"),
    (entry(K.closed, by="张值班", user=OFFICER, overridden=["traffic_police"], note="交警电话确认已封路"),
     "12月6日 14:23 张值班（街道智慧运行中心）在协办单位交警大队海湾中队未反馈时核验通过，工单关闭：交警电话确认已封路"),
    (entry(K.disputed, by="王办事", user=CLERK, department="city_management", note="系路面塌陷，非积水"),
     "12月6日 14:23 王办事（街道三防办）提出派单异议，建议派至城管执法队：系路面塌陷，非积水"),
    (entry(K.disputed, by="王办事", user=CLERK, note="不属本单位职责"),
     "12月6日 14:23 王办事（街道三防办）提出派单异议：不属本单位职责"),
    (entry(K.dispute_upheld, by="张值班", user=OFFICER, department="flood_control", note="属积水"),
     "12月6日 14:23 张值班（街道智慧运行中心）裁定维持原派单，退回街道三防办重新办理：属积水"),
    (entry(K.dispute_reassigned, by="张值班", user=OFFICER, from_department="flood_control",
           department="city_management"),
     "12月6日 14:23 张值班（街道智慧运行中心）裁定异议成立，由街道三防办改派至城管执法队"),
]


def test_every_kind_of_entry_has_its_own_sentence():
    assert {e.kind for e, _ in SAID} == set(HistoryKind)


@pytest.mark.parametrize(("shown", "said"), SAID, ids=[f"{e.kind.value}-{i}" for i, (e, _) in enumerate(SAID)])
def test_an_entry_reads_as_a_chinese_sentence_in_local_time(config, shown, said):
    text = wording.history_text(config.district, shown)
    assert text == said
    assert not ISO.search(text) and not MACHINE.search(text)


@pytest.mark.parametrize(("shown", "said"), SAID, ids=[f"{e.kind.value}-{i}" for i, (e, _) in enumerate(SAID)])
def test_an_entry_reads_in_english_when_asked_with_display_names_and_local_time(config, shown, said):
    text = wording.history_text(config.district, shown, "en")
    assert text.startswith("6 Dec 14:23 ")
    # People's names and words stay as they were written; the system's words are English.
    assert not ISO.search(text) and not re.search(r"pipeline|flood_control|ops_centre|->|系统|签收|时限", text)


def test_english_names_departments_by_their_english_display_names(config):
    text = wording.history_text(config.district, entry(K.reminded, stage="accept", due=DUE, department="flood_control"),
                                "en")
    assert text == "6 Dec 14:23 System reminder for Flood control office: accept due 6 Dec 15:00"


def test_the_entries_the_state_machine_writes_carry_their_kind_and_the_details_they_are_said_with(config):
    t = in_status(config, S.accepted, extension_pending=True)
    t = applied(config, t, event(A.extend_decision, CENTRE, minutes(5), approve=True))
    t = applied(config, t, event(A.resolve, OWNER, minutes(30), note="road cleared"))
    t = applied(config, t, event(A.verify, CENTRE, minutes(40), passed=False, note="still blocked"))
    t = applied(config, t, event(A.return_, OWNER, minutes(41), note="not ours"))
    t = applied(config, t, event(A.redispatch, CENTRE, minutes(42), department=REDISPATCH_TO, note="城管处理"))
    assert [h.kind for h in t.history] == [K.dispatch, K.accept, K.extension_requested, K.extension_approved,
                                          K.resolve, K.rework, K.return_, K.redispatch]
    assert t.history[0].department == OWNER
    assert t.history[3].until == t.history[2].until
    moved = t.history[-1]
    assert (moved.from_department, moved.department, moved.note, moved.actor) == (OWNER, REDISPATCH_TO, "城管处理",
                                                                                  CENTRE)
    assert wording.history_text(config.district, moved).endswith("将工单由交警大队海湾中队改派至城管执法队：城管处理")


def test_an_escalation_step_is_said_with_its_stage_local_deadline_and_department(config):
    t = new_ticket(config)
    step = next(s for s in escalation.ladder(config, t) if s.step is Escalation.reminded and s.stage == "accept")
    outcome = lifecycle.apply(config, t, TicketEvent(
        event_id=step.event_id, ticket_id=t.ticket_id, action=TicketAction.escalate, by="pipeline", actor="pipeline",
        at=step.at, stage=step.stage, step=step.step), step.at)
    assert outcome.verdict is Verdict.applied
    taken = outcome.ticket.history[-1]
    assert (taken.kind, taken.stage, taken.due, taken.department) == (K.reminded, "accept", t.accept_due, t.department)
    due = t.accept_due.astimezone(config.district.tz)
    assert wording.history_text(config.district, taken).endswith(
        f"系统自动催办交警大队海湾中队：签收时限 {due.month}月{due.day}日 {due:%H:%M}")


def test_the_pages_get_each_entry_in_words_beside_its_fields(config):
    t = in_status(config, S.accepted)
    shown = wording.readable(config.district, t)
    assert [h["kind"] for h in shown["history"]] == ["dispatch", "accept"]
    assert shown["history"][1]["action"] == "accept"  # the record's own fields stay
    assert shown["history"][0]["text"].endswith("系统派单至交警大队海湾中队")
    assert shown["history"][0]["text_en"].endswith("System dispatched it to Traffic police")
