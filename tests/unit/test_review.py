"""The review (复盘) of a scripted storm (handlers/review.py), every figure against a count by hand.

The storm, on Tuesday 8 December 2026 (district time), reviewed from 14:00 to 22:00 at 23:00:
- 14:00 a rainstorm orange warning; 14:05 a preventive waterlogging ticket (the first of its category);
- 14:10 the centre starts level III, 15:00 raises it to II (the flood II plan starts, four tasks), 20:00 stands
  it down (and the plan with it);
- 40 tickets dispatched in the period (and one before it, left out):
  A 19 blue waterloggings (flood_control) from 15:10 every 10 min, read 1 min before, accepted after 10 min,
    resolved after 1 h 30, closed after 2 h;
  B 10 yellow road damages (city_management) from 16:00 every 10 min, read 5 min before, accepted after 20 min,
    open (due in 24 h);
  C 4 orange traffic accidents (traffic_police) from 16:30 every 10 min, read 2 min before: C0 and C1 accepted
    after 45 min (30 min allowed: the two late acceptances; C0 reminded, C1 reported to the leadership), C2 and
    C3 after 10 min; C0's resolve deadline 2 h (passed, unresolved: overdue), the others' 8 h;
  D 2 red waterloggings (flood_control) at 17:00 and 17:30, read 1 min before, accepted after 5 min, resolved
    after 2 h, closed after 3 h;
  T 4 plan tasks (ws_wanghai, T4 red, the others orange) at 15:00 (accept in 10 min, finish in 30): T1 accepted +5, resolved +20,
    closed +25; T2 accepted +8, resolved +35 (late), closed +40; T3 accepted +5, open (overdue); T4 accepted +5,
    resolved +20, awaiting verification;
  P the preventive ticket: accepted after 10 min, open, due in 12 h.
- notifications: on the flood duty DingTalk group, d1 delivered at once; d2 failed once then delivered a
  minute later; d3 failed twice and given up; one before the period. On the city WeCom group, d4 queued at
  18:00, failed at 18:00:30, delivered at 18:02 (two minutes late); d5 muted at night.
"""
from __future__ import annotations

import io
from pathlib import Path
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pypdf

from handlers import review, review_pdf, wording
from schemas.enums import Category, Escalation, Severity, Source, TicketKind, TicketStatus
from schemas.notify import LogEntry
from schemas.plans import Fired, PlanRun
from schemas.correlation import Related
from schemas.records import Ticket
from schemas.response import MANUAL, ResponseChange
from schemas.silences import Matcher, Silence
from tests.unit.test_daily import MACHINE, cap, texts

CST = ZoneInfo("Asia/Shanghai")
DAY = datetime(2026, 12, 8, tzinfo=CST)
START, END, NOW = DAY + timedelta(hours=14), DAY + timedelta(hours=22), DAY + timedelta(hours=23)
HOLD = timedelta(minutes=30)
M = timedelta(minutes=1)


def at(hh: int, mm: int = 0) -> datetime:
    return DAY + timedelta(hours=hh, minutes=mm)


def ticket(ticket_id: str, dispatched: datetime, *, read_before: timedelta, accepted: timedelta | None,
           accept_in: timedelta, resolve_in: timedelta, resolved: timedelta | None = None,
           closed: timedelta | None = None, **fields) -> Ticket:
    values = dict(
        ticket_id=ticket_id, incident_id=f"I-{ticket_id}", source_ref=ticket_id, dedup_key=ticket_id,
        department="flood_control", source=Source.flood, category=Category.flood_waterlogging, subcategory="x",
        severity=Severity.blue, title=f"积水 {ticket_id}", lat=22.51, lon=113.93, community="wanghai",
        observed_at=dispatched - read_before, received_at=dispatched, last_seen_at=dispatched,
        dispatched_at=dispatched, accept_due=dispatched + accept_in, resolve_due=dispatched + resolve_in,
        accepted_at=dispatched + accepted if accepted is not None else None,
        resolved_at=dispatched + resolved if resolved is not None else None,
        closed_at=dispatched + closed if closed is not None else None,
        status=(TicketStatus.closed if closed is not None else TicketStatus.resolved if resolved is not None
                else TicketStatus.accepted if accepted is not None else TicketStatus.dispatched))
    values.update(fields)
    return Ticket(**values)


def storm() -> tuple[list[Ticket], PlanRun]:
    a = [ticket(f"A{n:02}", at(15, 10) + n * 10 * M, read_before=M, accepted=10 * M, accept_in=30 * M,
                resolve_in=240 * M, resolved=90 * M, closed=120 * M) for n in range(19)]
    b = [ticket(f"B{n}", at(16) + n * 10 * M, read_before=5 * M, accepted=20 * M, accept_in=120 * M,
                resolve_in=24 * 60 * M, department="city_management", source=Source.city,
                category=Category.city_road_damage, severity=Severity.yellow, title=f"路面破损 {n}") for n in range(10)]
    traffic = dict(department="traffic_police", source=Source.traffic, category=Category.traffic_accident,
                   severity=Severity.orange)
    c = [ticket("C0", at(16, 30), read_before=2 * M, accepted=45 * M, accept_in=30 * M, resolve_in=120 * M,
                escalation=Escalation.reminded, title="交通事故 0", **traffic),
         ticket("C1", at(16, 40), read_before=2 * M, accepted=45 * M, accept_in=30 * M, resolve_in=480 * M,
                escalation=Escalation.reported, title="交通事故 1", **traffic),
         *[ticket(f"C{n}", at(16, 30) + n * 10 * M, read_before=2 * M, accepted=10 * M, accept_in=30 * M,
                  resolve_in=480 * M, title=f"交通事故 {n}", **traffic) for n in (2, 3)]]
    d = [ticket(f"D{n}", at(17) + n * 30 * M, read_before=M, accepted=5 * M, accept_in=30 * M, resolve_in=240 * M,
                resolved=120 * M, closed=180 * M, severity=Severity.red, title=f"严重积水 {n}") for n in range(2)]
    task = dict(read_before=0 * M, accept_in=10 * M, resolve_in=30 * M, department="ws_wanghai",
                severity=Severity.orange, kind=TicketKind.task)
    tasks = [ticket("T1", at(15), accepted=5 * M, resolved=20 * M, closed=25 * M, title="低洼点位值守", **task),
             ticket("T2", at(15), accepted=8 * M, resolved=35 * M, closed=40 * M, title="下穿通道封闭", **task),
             # Filed under road damage, before any road damage was reported: a task is never the first of one,
             # and T4, red, is not listed as a red ticket opened (its plan's line tells it).
             ticket("T3", at(15), accepted=5 * M, title="抽排", category=Category.city_road_damage, **task),
             ticket("T4", at(15), accepted=5 * M, resolved=20 * M, title="低洼住户巡查", **{**task, "severity": Severity.red})]
    preventive = ticket("P", at(14, 5), read_before=0 * M, accepted=10 * M, accept_in=30 * M, resolve_in=720 * M,
                        kind=TicketKind.preventive, title="此处近90天积水4次")
    before = ticket("EARLY", at(13), read_before=M, accepted=50 * M, accept_in=30 * M, resolve_in=240 * M)
    run = PlanRun(run_id="flood_ii@20261208T070000Z", plan_id="flood_ii", name="防汛Ⅱ级应急响应预案",
                  fired=Fired(on="level", level="II"), started_at=at(15), ended_at=at(20), ended_reason="雨停",
                  tickets=["T1", "T2", "T3", "T4"])
    return [*a, *b, *c, *d, *tasks, preventive, before], run


HISTORIES = {MANUAL: [
    ResponseChange(at=at(14, 10), level="III", reason="暴雨橙色预警", trigger=MANUAL, by="王主任"),
    ResponseChange(at=at(15), level="II", reason="积水点增多", trigger=MANUAL, by="王主任"),
    ResponseChange(at=at(20), level=None, reason="雨停", trigger=MANUAL, by="王主任"),
]}


def log(delivery: str, when: datetime, result: str, ticket_id: str = "D0", channel: str = "flood_duty",
        channel_type: str = "dingtalk", severity: Severity = Severity.red) -> LogEntry:
    return LogEntry(at=when, delivery_id=delivery, ticket_id=ticket_id, channel=channel, channel_type=channel_type,
                    event="dispatched", severity=severity, result=result)


CITY = dict(ticket_id="B0", channel="city_management", channel_type="wecom", severity=Severity.yellow)
NOTIFICATIONS = [log("d1", at(17), "delivered"), log("d2", at(17), "failed"), log("d2", at(17, 1), "delivered"),
                 log("d3", at(17, 30), "failed"), log("d3", at(17, 31), "failed"), log("d3", at(17, 32), "dead"),
                 log("d0", at(13), "failed"),
                 # Out of order, as the log's lines may come back: the first attempt is the earliest.
                 log("d4", at(18, 2), "delivered", **CITY), log("d4", at(18), "queued", **CITY),
                 log("d4", at(18) + timedelta(seconds=30), "failed", **CITY),
                 log("d5", at(19), "muted", **CITY)]


def build(config) -> dict:
    tickets, run = storm()
    return review.review(
        config.district, start=START, end=END, now=NOW, tickets=tickets,
        cap_records=[cap("w1", "Alert", Severity.orange, at(14), headline="深圳市暴雨橙色预警")],
        histories=HISTORIES, hold=HOLD, runs=[run], run_tickets={t.ticket_id: t for t in tickets},
        notifications=NOTIFICATIONS)


def test_the_timeline_in_order_with_who_and_why(config):
    found = build(config)
    kinds = [(line["kind"], line["at"]) for line in found["timeline"]]
    assert kinds == [
        ("warning", at(14).isoformat()), ("first_of_category", at(14, 5).isoformat()),  # P, before any call
        ("level", at(14, 10).isoformat()), ("level", at(15).isoformat()), ("plan_started", at(15).isoformat()),
        ("first_of_category", at(16).isoformat()), ("first_of_category", at(16, 30).isoformat()),
        ("red_opened", at(17).isoformat()), ("red_opened", at(17, 30).isoformat()),
        ("level", at(20).isoformat()), ("plan_ended", at(20).isoformat())]
    by_kind = {}
    for line in found["timeline"]:
        by_kind.setdefault(line["kind"], []).append(line)
    assert [line["text"] for line in by_kind["level"]] == [
        "12月8日 14:10 启动Ⅲ级应急响应（王主任决定：暴雨橙色预警）",
        "12月8日 15:00 应急响应由Ⅲ级提升为Ⅱ级（王主任决定：积水点增多）",
        "12月8日 20:00 解除应急响应（王主任决定：雨停）"]
    # "Level III", not str.capitalize()'s "Level iii".
    assert by_kind["level"][0]["text_en"].endswith("Level III emergency response started (decided by 王主任: 暴雨橙色预警)")
    assert [line["ticket_id"] for line in by_kind["first_of_category"]] == ["P", "B0", "C0"]
    assert [line["ticket_id"] for line in by_kind["red_opened"]] == ["D0", "D1"]
    plan = by_kind["plan_started"][0]
    # T1 and T2 closed; T3 accepted and past its 15:30 deadline; T4 resolved, not overdue.
    assert plan["progress"] == {"done": 2, "total": 4, "overdue": 1}
    assert plan["text"] == "12月8日 15:00 启动预案「防汛Ⅱ级应急响应预案」，任务4项，已完成2项，超时1项"
    assert by_kind["plan_ended"][0]["text"] == "12月8日 20:00 预案「防汛Ⅱ级应急响应预案」结束：雨停"
    assert found["level_at_start"] is None
    assert [text for _, text in texts(found) if MACHINE.search(text)] == []


def test_the_district_measures_equal_the_hand_count(config):
    row = build(config)["measures"]["district"]
    assert {k: row[k] for k in ("dispatched", "accepted_on_time", "accepted_late", "due_to_accept", "resolved",
                                "resolved_on_time", "closed", "due", "overdue", "still_open", "reminded",
                                "escalated", "reported", "preventive")} == {
        "dispatched": 40,          # A19 B10 C4 D2 T4 P1 (EARLY is before the period)
        "accepted_on_time": 38,    # all but C0 and C1
        "accepted_late": 2,        # C0, C1 (45 min > 30)
        "due_to_accept": 40,       # all accepted
        "resolved": 24,            # A19 D2 T1 T2 T4
        "resolved_on_time": 23,    # all but T2 (35 min > 30)
        "closed": 23,              # A19 D2 T1 T2
        "due": 26,                 # 24 resolved + C0 and T3 past their deadlines
        "overdue": 2,              # C0 (18:30), T3 (15:30)
        "still_open": 17,          # B10 C4 T3 T4 P
        "reminded": 2, "escalated": 1, "reported": 1,  # C0 reminded, C1 up to 通报
        "preventive": 1,
    }
    assert row["rates"]["accepted_on_time"] == 0.95          # 38 / 40
    assert row["rates"]["on_time_handling"] == 0.8846        # 23 / 26
    assert row["rates"]["closure"] == 0.575                  # 23 / 40
    assert row["times"] == {
        # 5 zeros (T, P), 21 × 60 s (A, D), 4 × 120 s (C), 10 × 300 s (B): 4740 s / 40; the 20th and 21st are 60 s
        "to_ticket": {"count": 40, "mean_s": 118.5, "median_s": 60, "max_s": 300},
        # A 19 × 660, B 10 × 1500, C 2 × 2820 + 2 × 720, D 2 × 360, T 300 480 300 300, P 600: 37320 s / 40
        "to_accept": {"count": 40, "mean_s": 933.0, "median_s": 660, "max_s": 2820},
        # A 19 × 7260, D 2 × 10860, T1 1500, T2 2400: 163560 s / 23 = 7111.30; the 12th of 23 is 7260
        "to_close": {"count": 23, "mean_s": 7111.3, "median_s": 7260, "max_s": 10860},
    }


def test_per_department_and_severity(config):
    measures = build(config)["measures"]
    departments = {row["department"]: row for row in measures["departments"]}
    assert list(departments) == ["city_management", "flood_control", "traffic_police", "ws_wanghai"]
    police = departments["traffic_police"]
    assert (police["dispatched"], police["accepted_late"], police["overdue"], police["reminded"],
            police["reported"]) == (4, 2, 1, 2, 1)
    # 720 720 2820 2820
    assert police["times"]["to_accept"] == {"count": 4, "mean_s": 1770.0, "median_s": 1770.0, "max_s": 2820}
    assert police["name"] != "traffic_police" and police["name_en"]
    flood = departments["flood_control"]  # A19 D2 P
    assert (flood["dispatched"], flood["closed"], flood["preventive"]) == (22, 21, 1)
    severities = {row["department"]: row for row in measures["severities"]}
    assert list(severities) == ["red", "orange", "yellow", "blue"]
    assert [severities[s]["dispatched"] for s in severities] == [3, 7, 10, 20]  # D T4; C T1-T3; B; A P
    assert severities["red"]["times"]["to_close"] == {"count": 2, "mean_s": 10860.0, "median_s": 10860.0,
                                                      "max_s": 10860}
    assert severities["orange"]["accepted_late"] == 2


def test_notifications_sent_and_failed_in_the_period(config):
    found = build(config)["notifications"]
    assert {k: v for k, v in found.items() if k not in ("by_channel", "by_channel_type")} == {
        "deliveries": 5, "delivered": 3, "failed": 1, "given_up": 1, "failed_attempts": 4, "muted": 1,
        # d1 0 s, d2 60 s, d4 120 s: the median 60 s, and only d4 took longer than a minute.
        "lateness": {"delivered": 3, "median_s": 60, "max_s": 120, "over_60s": 1}}
    assert found["by_channel"] == {
        "city_management": {"deliveries": 2, "delivered": 1, "failed": 0, "given_up": 0, "failed_attempts": 1,
                            "muted": 1, "channel_type": "wecom",
                            "lateness": {"delivered": 1, "median_s": 120, "max_s": 120, "over_60s": 1}},
        "flood_duty": {"deliveries": 3, "delivered": 2, "failed": 1, "given_up": 1, "failed_attempts": 3, "muted": 0,
                       "channel_type": "dingtalk",
                       "lateness": {"delivered": 2, "median_s": 30, "max_s": 60, "over_60s": 0}}}
    # One channel of each type here: the same figures per type, named as people call them.
    assert found["by_channel_type"] == {
        "dingtalk": {**{k: v for k, v in found["by_channel"]["flood_duty"].items() if k != "channel_type"},
                     "name": "钉钉群机器人", "name_en": "DingTalk robot"},
        "wecom": {**{k: v for k, v in found["by_channel"]["city_management"].items() if k != "channel_type"},
                  "name": "企业微信群机器人", "name_en": "WeCom robot"}}


def test_a_delivery_not_delivered_has_no_lateness(config):
    found = review.notification_counts([log("x", at(17), "failed"), log("x", at(17, 5), "dead")])
    assert found["lateness"] == {"delivered": 0, "median_s": None, "max_s": None, "over_60s": 0}


def silence(silence_id: str, starts: datetime, ends: datetime, matchers: list[Matcher], comment: str,
            mode: str = "quiet") -> Silence:
    return Silence(silence_id=silence_id, matchers=matchers, starts_at=starts, ends_at=ends, comment=comment, mode=mode,
                   created_by="李值班", created_at=starts - 5 * M)


def silenced() -> tuple[list[Ticket], list[Silence], list[LogEntry]]:
    tickets, _ = storm()
    # S1, quiet, 16:45-18:00 on road damage in Wanghai: B5-B9 (16:50-17:30) opened under it; B5 and B6's
    # notifications muted by it (B0's was muted by the night interval, not by a silence).
    held = {f"B{n}" for n in range(5, 10)}
    tickets = [t.model_copy(update={"silenced_by": "S1"}) if t.ticket_id in held else t for t in tickets]
    silences = [
        silence("S1", at(16, 45), at(18), [Matcher(name="community", value="wanghai"),
                                            Matcher(name="category", value="city_road_damage")], "望海路施工，路面破损已知"),
        silence("S0", at(10), at(12), [Matcher(name="source", value="city")], "上午演练"),        # before the period
        silence("SX", at(15), at(15), [Matcher(name="source", value="city")], "误建，已删除"),    # deleted before it began
        silence("S4", at(21, 30), at(23, 59), [Matcher(name="source", value="construction"),
                                               Matcher(name="severity", value="red", is_equal=False)], "夜间工地设备检修",
                mode="suppress"),  # overlaps the period's end, held nothing
    ]
    muted = [log("m5", at(16, 50), "muted", **{**CITY, "ticket_id": "B5"}),
             log("m6", at(17), "muted", **{**CITY, "ticket_id": "B6"}),
             log("m9", at(22, 30), "muted", **{**CITY, "ticket_id": "B9"})]  # after the period
    return tickets, silences, muted


def test_the_silences_in_force_and_what_they_held_back(config):
    tickets, silences, muted = silenced()
    held = {f"B{n}" for n in range(5, 10)}
    found = review.review(config.district, start=START, end=END, now=NOW, tickets=tickets, cap_records=[],
                          histories={}, hold=HOLD, runs=[], run_tickets={}, notifications=NOTIFICATIONS + muted,
                          silences=silences, suppressed={"S4": 3, "inhibit:jam_under_accident": 2})["silences"]
    assert [s["silence_id"] for s in found] == ["S1", "S4"]
    first, last = found
    assert (first["suppressed"], first["tickets"], first["ticket_count"], first["muted"]) == (0, sorted(held), 5, 2)
    assert (last["suppressed"], last["tickets"], last["ticket_count"], last["muted"]) == (3, [], 0, 0)
    assert first["text"] == ("李值班设置静默（立案不通知），12月8日 16:45 至 12月8日 18:00，条件：社区=望海社区，类别=道路破损；"
                             "原因：望海路施工，路面破损已知。期间静默立案 5 件，静默通知 2 条。")
    # A suppressing silence says what it kept from the board, not only the red tickets it let through.
    assert last["text"] == ("李值班设置屏蔽（不立案），12月8日 21:30 至 12月8日 23:59，条件：来源=建设工地，等级≠红色；"
                            "原因：夜间工地设备检修。期间屏蔽事件 3 起（未立案），红色事件照常立案并静默 0 件，静默通知 0 条。")
    assert last["text_en"].endswith("In the period: 3 incidents kept from opening a ticket, 0 red tickets opened "
                                    "quiet, 0 notifications muted.")
    assert first["text_en"].startswith("李值班 set a quiet silence (ticket, no notification), 8 Dec 16:45 to 8 Dec 18:00, "
                                       "matching Community=Wanghai, Category=Road damage")
    assert (first["created_by"], first["comment"], first["mode"]) == ("李值班", "望海路施工，路面破损已知", "quiet")


def compounded() -> tuple[list[Ticket], dict[str, Ticket]]:
    """The storm with its jams: D0 (17:00) jammed the road above it (J0, 17:05) and D1 (17:30) did too (J1,
    17:35); the accidents C0 and C1 (16:30, 16:40) jammed 望海路 (J2, 16:45); the waterlogging EARLY (13:00,
    before the period) jammed J3 (14:30). Each link is on both tickets, as the pipeline writes it."""
    tickets, _ = storm()
    jam = dict(read_before=M, accepted=None, accept_in=30 * M, resolve_in=240 * M, department="traffic_police",
               source=Source.traffic, category=Category.traffic_congestion, severity=Severity.orange)
    jams = {"J0": at(17, 5), "J1": at(17, 35), "J2": at(16, 45), "J3": at(14, 30)}
    pairs = [("积水致拥堵", "D0", "J0"), ("积水致拥堵", "D1", "J1"), ("事故致拥堵", "C0", "J2"),
             ("事故致拥堵", "C1", "J2"), ("积水致拥堵", "EARLY", "J3")]
    links: dict[str, list[Related]] = {}
    for rule, cause, effect in pairs:
        links.setdefault(cause, []).append(Related(ticket_id=effect, rule=rule, role="effect"))
        links.setdefault(effect, []).append(Related(ticket_id=cause, rule=rule, role="cause"))
    tickets += [ticket(j, when, title=f"拥堵 {j}", **jam) for j, when in jams.items()]
    tickets = [t.model_copy(update={"related": links.get(t.ticket_id, [])}) for t in tickets]
    early = next(t for t in tickets if t.ticket_id == "EARLY")
    return [t for t in tickets if t.ticket_id != "EARLY"], {"EARLY": early}


def test_compound_incidents_grouped_by_rule_cause_to_effect(config):
    tickets, linked = compounded()
    found = review.review(config.district, start=START, end=END, now=NOW, tickets=tickets, cap_records=[],
                          histories={}, hold=HOLD, runs=[], run_tickets={}, notifications=[], linked=linked)["compound"]
    # In the order they began: EARLY 13:00, C0 16:30, D0 17:00, D1 17:30; C0 and C1 share their jam: one group.
    assert [(g["rule"], [c["ticket_id"] for c in g["causes"]], [e["ticket_id"] for e in g["effects"]]) for g in found] == [
        ("积水致拥堵", ["EARLY"], ["J3"]), ("事故致拥堵", ["C0", "C1"], ["J2"]), ("积水致拥堵", ["D0"], ["J0"]),
        ("积水致拥堵", ["D1"], ["J1"])]
    assert found[2]["text"] == "积水致拥堵：D0 严重积水 0（街道三防办，12月8日 17:00） → J0 拥堵 J0（交警大队海湾中队，12月8日 17:05）"
    assert found[1]["text"] == ("事故致拥堵：C0 交通事故 0（交警大队海湾中队，12月8日 16:30）、C1 交通事故 1（交警大队海湾中队，"
                                "12月8日 16:40） → J2 拥堵 J2（交警大队海湾中队，12月8日 16:45）")
    assert found[2]["text_en"].startswith("积水致拥堵: D0 严重积水 0 (")
    assert found[2]["causes"][0] == {
        "ticket_id": "D0", "title": "严重积水 0", "department": "flood_control",
        "department_name": found[2]["causes"][0]["department_name"], "department_name_en": "Flood control office",
        "category": "flood_waterlogging", "severity": "red", "dispatched_at": at(17).isoformat()}
    # Without the ticket from before the period, its link is left out (nothing to name it by).
    alone = review.review(config.district, start=START, end=END, now=NOW, tickets=tickets, cap_records=[],
                          histories={}, hold=HOLD, runs=[], run_tickets={}, notifications=[])["compound"]
    assert [g["effects"][0]["ticket_id"] for g in alone] == ["J2", "J0", "J1"]


def test_the_period_tickets_are_the_maps_points(config):
    points = build(config)["points"]
    # The 40 tickets of the period (EARLY, before it, is not), in the order they were dispatched: P first.
    assert len(points) == 40 and points[0]["ticket_id"] == "P" and "EARLY" not in {p["ticket_id"] for p in points}
    assert [sum(p["severity"] == s for p in points) for s in ("red", "orange", "yellow", "blue")] == [3, 7, 10, 20]
    d0 = next(p for p in points if p["ticket_id"] == "D0")
    assert d0 == {"ticket_id": "D0", "lat": 22.51, "lon": 113.93, "severity": "red", "kind": "incident",
                  "category": "flood_waterlogging", "title": "严重积水 0", "department": "flood_control",
                  "dispatched_at": at(17).isoformat()}


def test_tickets_opened_per_hour_by_severity(config):
    chart = build(config)["opened"]
    # 14:00-22:00, eight hours. 14h: P. 15h: T1-T3 (orange), T4 (red), A00-A04. 16h: A05-A10, B0-B5, C0-C2.
    # 17h: A11-A16, B6-B9, C3, D0 and D1 (red). 18h: A17, A18.
    assert chart["slot"] == "hour" and len(chart["starts"]) == 8 and chart["starts"][0] == at(14).isoformat()
    assert chart["by_severity"] == {"red": [0, 1, 0, 2, 0, 0, 0, 0], "orange": [0, 3, 3, 1, 0, 0, 0, 0],
                                    "yellow": [0, 0, 6, 4, 0, 0, 0, 0], "blue": [1, 5, 6, 6, 2, 0, 0, 0]}
    assert chart["labels"] == ["12月8日 14:00", "15时", "16时", "17时", "18时", "19时", "20时", "21时"]
    assert chart["labels_en"][:2] == ["8 Dec 14:00", "15:00"]
    # A longer period by the day, from the day it starts in: 8 Dec 14:00 to 12 Dec 14:00 is five days' slots.
    tickets, _ = storm()
    days = review.opened_chart(config.district, tickets, START, START + timedelta(days=4))
    assert (days["slot"], days["labels"]) == ("day", ["12月8日", "12月9日", "12月10日", "12月11日", "12月12日"])
    assert [sum(days["by_severity"][s][0] for s in days["by_severity"])] == [41]  # EARLY too: the 8th's tickets
    assert days["labels_en"][0] == "8 Dec"


def test_the_servers_names_are_the_pages_names():
    script = (Path(__file__).parents[2] / "streams/http/static/common.js").read_text()
    for lang in ("zh", "en"):
        for category in Category:
            assert f'{category.value}: "{wording.category_name(category.value, lang)}"' in script, (lang, category)
        for source in Source:
            assert f'{source.value}: "{wording.source_name(source.value, lang)}"' in script, (lang, source)


def test_the_level_period_is_found_and_named_by_its_start(config):
    periods = review.level_periods(config.district, HISTORIES, HOLD, NOW)
    assert periods == [review.LevelPeriod("20261208T061000Z", at(14, 10), at(20), "II")]
    ongoing = review.level_periods(config.district, {MANUAL: HISTORIES[MANUAL][:2]}, HOLD, NOW)
    assert ongoing == [review.LevelPeriod("20261208T061000Z", at(14, 10), None, "II")]
    assert review.level_periods(config.district, {}, HOLD, NOW) == []


def test_a_level_period_review_lists_its_raise_and_its_stand_down(config):
    tickets, run = storm()
    found = review.review(config.district, start=at(14, 10), end=at(20), now=NOW, tickets=tickets, cap_records=[],
                          histories=HISTORIES, hold=HOLD, runs=[run], run_tickets={}, notifications=[])
    assert [line["level"] for line in found["timeline"] if line["kind"] == "level"] == ["III", "II", None]
    assert found["level_at_start"] is None
    # The preventive ticket (14:05) came before the period: not in its rows.
    assert found["measures"]["district"]["dispatched"] == 39


def test_a_review_id_names_its_level_period_or_its_period():
    assert review.parse_review_id(review.level_review_id("20261208T061000Z")) == review.OfLevel("20261208T061000Z")
    period = review.period_review_id(START, END)
    assert period == "period-20261208T060000Z-20261208T140000Z"
    assert review.parse_review_id(period) == review.OfPeriod(START, END)
    for wrong in ("period-20261208T140000Z-20261208T060000Z",  # ends before it starts
                  "period-20261332T000000Z-20261208T060000Z",  # no such day
                  "level-2026", "20261208T061000Z", "level-20261208T061000Z/x"):
        assert review.parse_review_id(wrong) is None, wrong


def test_the_pdf_is_an_a4_document_with_the_storms_words(config):
    found = build(config)
    found["level_period"] = {"change_id": "20261208T061000Z", "highest": "II"}
    found["written"] = {"version": 2, "by": "张伟", "at": at(23).isoformat(), "findings": [
        {"finding": "交通事故签收超时45分钟", "action": "事故类工单直派交警值班台", "owner": "traffic_police",
         "due": "2027-03-31", "done": False}]}
    for lang in ("zh", "en"):
        data = review_pdf.render(config.district, found, lang)
        reader = pypdf.PdfReader(io.BytesIO(data))
        box = reader.pages[0].mediabox
        assert (round(float(box.width)), round(float(box.height))) == (595, 842)   # A4 in points
        pages = [page.extract_text() for page in reader.pages]
        # The storm's course, two tables and a finding: one or two pages, the first full when there are two.
        assert 1 <= len(pages) <= 2 and (len(pages) == 1 or len(pages[0].splitlines()) >= 40), [len(p) for p in pages]
        text = "\n".join(pages).replace("\n", "")
        for line in found["timeline"]:
            said = line["text" if lang == "zh" else "text_en"]
            assert said.split(" ", 2)[-1][:10] in text, said
        assert not MACHINE.search(text), MACHINE.search(text)
    zh = "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(review_pdf.render(config.district, found))).pages)
    zh = zh.replace("\n", "")
    assert "海湾街道Ⅱ级应急响应复盘" in zh and "事故类工单直派交警值班台" in zh and "交警大队海湾中队" in zh
    assert "期间派单 40 件（其中预防性工单 1 件）" in zh and "失败 1 条" in zh and "值班员（签字）" in zh
    assert "预防性工单所在点位中，1 处在期间再次上报。" in zh
    # The charts: tickets per hour by severity (its hours along the axis) and each department's on-time acceptance.
    assert "每小时派单（按等级）" in zh and "12月8日 14:00" in zh and "17时" in zh
    assert "各部门按时签收率" in zh and "50%" in zh and "100%" in zh  # the traffic police 2 of 4, the others all
    assert "已送达的 3 条从首次发送到送达用时中位 60 秒、最长 2 分钟，超过 1 分钟的 1 条。" in zh
    assert "企业微信群机器人" in zh
    assert "四、屏蔽与静默" in zh and "期间无屏蔽或静默。" in zh
    tickets, silences, muted = silenced()
    with_silences = {**found, "silences": review.review(
        config.district, start=START, end=END, now=NOW, tickets=tickets, cap_records=[], histories={}, hold=HOLD,
        runs=[], run_tickets={}, notifications=muted, silences=silences)["silences"]}
    zh = "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(
        review_pdf.render(config.district, with_silences))).pages).replace("\n", "")
    assert "原因：望海路施工，路面破损已知。期间静默立案 5 件，静默通知 2 条。" in zh and "B5、B6、B7、B8、B9" in zh
    assert "期间无关联规则串联的工单。" in zh
    # The map's key under the district's outline, one dot per ticket.
    assert "六、事件分布" in zh and "红色 3 件" in zh and "橙色 7 件" in zh and "蓝色 20 件" in zh and "望海社区" in zh
    tickets, linked = compounded()
    with_compound = {**found, "compound": review.review(
        config.district, start=START, end=END, now=NOW, tickets=tickets, cap_records=[], histories={}, hold=HOLD,
        runs=[], run_tickets={}, notifications=[], linked=linked)["compound"]}
    zh = "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(
        review_pdf.render(config.district, with_compound))).pages).replace("\n", "")
    assert "五、复合事件" in zh and "积水致拥堵：D0 严重积水 0（街道三防办，12月8日 17:00） → J0" in zh


def test_a_preventive_ticket_and_whether_its_place_was_reported_again(config):
    tickets, run = storm()
    # A00 (15:10) is a waterlogging at P's very place (both at the default spot), after P (14:05); B0 is road
    # damage there (another category); a waterlogging 600 m away is another place.
    far = ticket("FAR", at(15, 30), read_before=M, accepted=None, accept_in=30 * M, resolve_in=240 * M,
                 lat=22.51 + 600 / 111_195.0)
    found = review.review(config.district, start=START, end=END, now=NOW, tickets=[*tickets, far], cap_records=[],
                          histories={}, hold=HOLD, runs=[], run_tickets={}, notifications=[], radius_m=200)
    [line] = found["preventive"]
    assert (line["ticket_id"], line["category"], line["department"]) == ("P", "flood_waterlogging", "flood_control")
    assert line["reported_again"] == [f"A{n:02}" for n in range(19)] + ["D0", "D1"]
    alone = review.review(config.district, start=START, end=END, now=NOW,
                          tickets=[t for t in tickets if t.ticket_id == "P"] + [far], cap_records=[], histories={},
                          hold=HOLD, runs=[], run_tickets={}, notifications=[], radius_m=200)
    assert alone["preventive"][0]["reported_again"] == []
