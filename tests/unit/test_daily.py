"""The daily duty report's contents (handlers/daily.py): counts, the red and orange events with their course,
the warnings and response levels of the day with their times, the open items handed over, the handovers and
who was on duty, all in people's words at the district's local time, with no personal data."""
from __future__ import annotations

import io
import json
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pypdf

from handlers import daily, daily_pdf, duty
from schemas.cap import CapRecord
from schemas.enums import Category, Severity, Source, TicketStatus
from schemas.records import Actor, HistoryEntry, HistoryKind, Ticket
from schemas.response import ResponseChange

CST = ZoneInfo("Asia/Shanghai")
DAY = datetime(2026, 12, 8, tzinfo=CST)  # a Tuesday, inside the roster of deploy/config
AT = DAY + timedelta(hours=9)
HOLD = timedelta(minutes=30)
# ISO times, offsets, the pipeline's name, "orange -> red", rule and enum names, CAP message types.
MACHINE = re.compile(r"\d{4}-\d{2}-\d{2}T|[+-]\d{2}:\d{2}\b|pipeline|->|\b[a-z]+_[a-z_]+\b|\b(Alert|Update|Cancel|manual)\b")


def ticket(n: int, **changes) -> Ticket:
    values = dict(
        ticket_id=f"T-{n}", incident_id=f"I-{n}", source_ref=f"R-{n}", dedup_key=f"k{n}", department="flood_control",
        source=Source.flood, category=Category.flood_waterlogging, subcategory="waterlogging", severity=Severity.blue,
        title=f"积水 {n}，联系13912345678", description="", community="wanghai", lat=22.51, lon=113.93, occurrences=1,
        observed_at=AT, received_at=AT, last_seen_at=AT, dispatched_at=AT, accept_due=AT + timedelta(minutes=30),
        resolve_due=AT + timedelta(hours=4), version=1,
    )
    values.update(changes)
    return Ticket(**values)


def cap(key: str, msg_type: str, severity: Severity | None, at: datetime, **fields) -> CapRecord:
    return CapRecord(key=key, identifier=key, sender="szmb", sent=at, status="Actual", msg_type=msg_type, feed="szmb",
                     received_at=at, chain="c1", kind="rainstorm", severity=severity, **fields)


def build(config, tickets, **kw) -> dict:
    values = dict(day=DAY.date(), period="day", start=DAY, end=DAY + timedelta(days=1), now=DAY + timedelta(days=2),
                  tickets=tickets, open_now=[], rows={}, cap_records=[], histories={}, hold=HOLD, handovers=[],
                  stretches=duty.shifts(config.district, DAY, DAY + timedelta(days=1)))
    values.update(kw)
    return daily.report(config.district, **values)


def texts(report: dict) -> list[tuple[str, str]]:
    """Every sentence the report gives people to read, in both languages: ("text" or "text_en", the sentence)."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            found.extend((k, v) for k, v in node.items() if k in ("text", "text_en"))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(report)
    return found


def test_counts_and_the_red_and_orange_events_with_their_course(config):
    clerk = Actor(user_id="u1", name="李工", department="flood_control", role="clerk")
    accepted = HistoryEntry(at=AT + timedelta(minutes=5), by="李工", action="accept", kind=HistoryKind.accept,
                            user=clerk, note="已派人，电话13912345678")
    tickets = [ticket(1, severity=Severity.orange, occurrences=3),
               ticket(2, severity=Severity.red, dispatched_at=AT + timedelta(hours=1), accepted_at=AT + timedelta(minutes=5),
                      status=TicketStatus.accepted, history=[accepted]),
               ticket(3, source=Source.city, category=Category.city_sanitation, department="ws_wanghai")]
    report = build(config, tickets)
    counts = report["counts"]
    assert counts["total"] == 3 and counts["by_source"] == {"traffic": 0, "flood": 2, "city": 1, "construction": 0}
    assert counts["by_severity"] == {"red": 1, "orange": 1, "yellow": 0, "blue": 1}
    assert counts["reports_by_source"]["flood"] == 4
    # Red first, then orange; the blue one is only counted.
    assert [t["ticket_id"] for t in report["events"]] == ["T-2", "T-1"]
    assert report["events"][0]["history"][0]["text"] == "12月8日 09:05 李工（街道三防办）签收：已派人，电话139****5678"
    assert sorted(t["ticket_id"] for t in report["overdue"]) == ["T-1", "T-2", "T-3"]
    assert "13912345678" not in json.dumps(report, ensure_ascii=False)


def test_warnings_and_response_levels_of_the_day_in_words_and_order(config):
    issued = cap("a1", "Alert", Severity.orange, AT, expires=AT + timedelta(hours=6), headline="龙岗区暴雨橙色预警信号",
                 superseded_by="a2")
    raised = cap("a2", "Update", Severity.red, AT + timedelta(hours=2), expires=AT + timedelta(hours=8))
    cancelled = cap("a3", "Cancel", None, AT + timedelta(hours=6))
    yesterday = cap("a0", "Alert", Severity.yellow, AT - timedelta(days=1), lowered_at=AT - timedelta(hours=20))
    night = cap("b1", "Alert", Severity.yellow, AT - timedelta(hours=5), lowered_at=AT + timedelta(hours=7))
    auto = "rainstorm_orange@STATION"
    histories = {
        # The rule's signal is read again every 20 minutes while the warning is up (Warnings.keep_up).
        auto: [*(ResponseChange(at=AT + timedelta(minutes=20 * n), level="II", reason="暴雨 (orange)",
                                trigger="rainstorm_orange", by="pipeline") for n in range(18)),
               ResponseChange(at=AT + timedelta(hours=6), level=None, reason="解除", trigger="rainstorm_orange",
                              by="pipeline")],
        "manual": [ResponseChange(at=AT + timedelta(hours=3), level="I", reason="多处内涝，电话13912345678",
                                  trigger="manual", by="王副主任"),
                   ResponseChange(at=AT + timedelta(hours=5), level=None, reason="雨势减弱", trigger="manual",
                                  by="王副主任")],
    }
    report = build(config, [], cap_records=[cancelled, raised, issued, yesterday, night], histories=histories)
    assert [w["step"] for w in report["warnings"]] == ["issued", "issued", "changed", "cancelled", "expired"]
    assert [w["text"] for w in report["warnings"]] == [
        "12月8日 04:00 发布暴雨黄色预警",
        "12月8日 09:00 发布暴雨橙色预警（至 12月8日 15:00）：龙岗区暴雨橙色预警信号",
        "12月8日 11:00 暴雨预警调整为红色（至 12月8日 17:00）",
        "12月8日 15:00 解除暴雨预警",
        "12月8日 16:00 暴雨黄色预警到期",
    ]
    assert report["warnings"][2]["text_en"] == "8 Dec 11:00 Rainstorm warning changed to red (until 8 Dec 17:00)"
    assert report["warnings"][4]["text_en"] == "8 Dec 16:00 Rainstorm yellow warning expired"
    levels = report["response"]
    assert levels["at_start"] is None
    # The manual I from 12:00 to 14:00, then the automatic II again, held 30 min past its stand-down.
    assert [(c["level"], c["manual"]) for c in levels["changes"]] == [("II", False), ("I", True), ("II", True), (None, False)]
    assert [c["text"] for c in levels["changes"]] == [
        "12月8日 09:00 启动Ⅱ级应急响应（按响应规则自动）",
        "12月8日 12:00 应急响应由Ⅱ级提升为Ⅰ级（王副主任决定：多处内涝，电话139****5678）",
        "12月8日 14:00 应急响应由Ⅰ级调整为Ⅱ级（王副主任决定：雨势减弱）",
        "12月8日 15:30 解除应急响应（按响应规则自动）",
    ]
    # While the day goes on, only what has happened: the rule's level would lapse at 15:30 without new readings.
    before = build(config, [], cap_records=[issued], histories=histories, now=AT + timedelta(hours=4))
    assert [(c["level"], c["manual"]) for c in before["response"]["changes"]] == [("II", False), ("I", True)]
    assert [w["step"] for w in before["warnings"]] == ["issued"]
    for key, said in texts(report):
        assert not MACHINE.search(said), said
        assert key == "text_en" or not re.search(r"[A-Za-z]{2,}", said), said   # no English in the Chinese


def test_open_items_are_the_red_and_orange_not_done_when_the_day_ended(config):
    end = DAY + timedelta(days=1)
    done_late = ticket(1, severity=Severity.red, accepted_at=AT, resolved_at=end + timedelta(hours=1),
                       status=TicketStatus.resolved)
    done = ticket(2, severity=Severity.red, accepted_at=AT, resolved_at=AT + timedelta(hours=1), status=TicketStatus.resolved)
    earlier_still_open = ticket(3, severity=Severity.orange, dispatched_at=AT - timedelta(days=2),
                                accept_due=AT - timedelta(days=2) + timedelta(minutes=30))
    yellow = ticket(4, severity=Severity.yellow)
    tomorrow = ticket(5, severity=Severity.red, dispatched_at=end + timedelta(minutes=1))
    report = build(config, [done_late, done, yellow], open_now=[earlier_still_open, tomorrow, done_late])
    items = report["open_items"]
    assert (items["total"], [t["ticket_id"] for t in items["tickets"]]) == (2, ["T-1", "T-3"])
    assert items["tickets"][0]["text"] == "办结时限 12月8日 13:00，已超时"
    assert items["tickets"][1]["text"] == "签收时限 12月6日 09:30，已超时"
    assert items["tickets"][1]["text_en"] == "accept by 6 Dec 09:30, overdue"


def test_handovers_and_who_was_on_duty(config):
    handover = {"handover_id": "H1", "at": (DAY + timedelta(hours=8, minutes=35)).isoformat(), "by": "张伟",
                "user": {}, "shift_change": (DAY + timedelta(hours=8, minutes=30)).isoformat(),
                "outgoing": {"officer": {"name": "张伟"}, "leader": {"name": "陈建国"}},
                "incoming": {"officer": {"name": "李娜"}, "leader": {"name": "陈建国"}},
                "note": "望海路积水点需持续关注，联系13912345678", "open_total": 4, "open_tickets": []}
    report = build(config, [], handovers=[handover])
    [line] = report["handovers"]
    assert line["text"] == ("12月8日 08:35 张伟 / 陈建国 交班给 李娜 / 陈建国，在办红色、橙色工单 4 件。"
                            "交班说明：望海路积水点需持续关注，联系139****5678")
    # The day's officers (the one from the night before until 08:30, then the day's) and its leader.
    officers = [p["name"] for p in report["duty"]["officer"]]
    assert len(officers) == 2 and all(officers) and report["duty"]["leader"]
    assert "13912345678" not in json.dumps(report, ensure_ascii=False)


def pdf_pages(data: bytes) -> list[str]:
    reader = pypdf.PdfReader(io.BytesIO(data))
    return [page.extract_text() for page in reader.pages]


def storm_day(config, n: int = 40) -> dict:
    """A storm's day: n tickets (a third red or orange, each accepted with a note), a warning raised and
    cancelled, the level started and stood down, a handover."""
    clerk = Actor(user_id="u1", name="李工", department="flood_control", role="clerk")
    tickets = []
    for i in range(n):
        at = AT + timedelta(minutes=17 * i)
        history = [HistoryEntry(at=at + timedelta(minutes=4), by="李工", action="accept", kind=HistoryKind.accept,
                                user=clerk, note=f"已安排抢险队第 {i % 5 + 1} 组赶赴现场，设置警示围挡并疏导交通")]
        tickets.append(ticket(i, severity=[Severity.red, Severity.orange, Severity.yellow][i % 3], dispatched_at=at,
                              title=f"望海路与滨海大道交叉口第 {i} 处积水，水深约 30 厘米", status=TicketStatus.accepted,
                              accepted_at=at + timedelta(minutes=4), accept_due=at + timedelta(minutes=30),
                              resolve_due=at + timedelta(hours=4), history=history))
    warnings = [cap("a1", "Alert", Severity.orange, AT, expires=AT + timedelta(hours=6), headline="海湾街道暴雨橙色预警信号",
                    superseded_by="a2"), cap("a2", "Update", Severity.red, AT + timedelta(hours=2)),
                cap("a3", "Cancel", None, AT + timedelta(hours=9))]
    histories = {"manual": [ResponseChange(at=AT + timedelta(minutes=10), level="II", reason="暴雨橙色预警", trigger="manual",
                                           by="陈建国"),
                            ResponseChange(at=AT + timedelta(hours=9), level=None, reason="预警解除", trigger="manual",
                                           by="陈建国")]}
    handover = {"handover_id": "H1", "at": (DAY + timedelta(hours=8, minutes=35)).isoformat(), "by": "张伟", "user": {},
                "shift_change": (DAY + timedelta(hours=8, minutes=30)).isoformat(),
                "outgoing": {"officer": {"name": "张伟"}}, "incoming": {"officer": {"name": "李娜"}},
                "note": "夜间无重大情况", "open_total": 0, "open_tickets": []}
    return build(config, tickets, open_now=tickets, cap_records=warnings, histories=histories, handovers=[handover],
                 now=DAY + timedelta(hours=23))


def test_the_pdf_is_a_few_full_a4_pages_with_the_days_words(config):
    report = storm_day(config)
    for lang in ("zh", "en"):
        data = daily_pdf.render(config.district, report, lang)
        reader = pypdf.PdfReader(io.BytesIO(data))
        box = reader.pages[0].mediabox
        assert (round(float(box.width)), round(float(box.height))) == (595, 842)   # A4 in points
        pages = pdf_pages(data)
        assert 2 <= len(pages) <= 8, len(pages)
        text = "\n".join(pages)
        for line in (*report["warnings"], *report["response"]["changes"]):
            said = line["text" if lang == "zh" else "text_en"]
            assert said.split(" ", 2)[-1][:12] in text.replace("\n", " "), said
        assert not MACHINE.search(text), MACHINE.search(text)
    zh = "".join(pdf_pages(daily_pdf.render(config.district, report))).replace("\n", "")
    assert "海湾街道值班日报" in zh and "值班员（签字）" in zh and "带班领导（签字）" in zh
    assert "已安排抢险队第 1 组赶赴现场" in zh


def test_a_shifts_period_is_the_officers_shift_starting_that_day(config):
    # deploy/config: the officer's shift runs 08:30 to 08:30 the next day; the roster begins 2026-11-30.
    assert daily.shift_of(config.district, DAY.date()) == (DAY + timedelta(hours=8, minutes=30),
                                                           DAY + timedelta(days=1, hours=8, minutes=30))
    assert daily.shift_of(config.district, datetime(2026, 11, 1).date()) is None
