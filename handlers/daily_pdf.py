"""The daily duty report (handlers/daily.py) as an A4 PDF, drawn on the worker with ReportLab. No I/O.

The worker has no browser, so the PDF is not the page printed: it is the same report laid out again, the
same sentences (`text` / `text_en`) in the same order as /stats/daily prints them. Chinese is set in
ReportLab's built-in Adobe CJK font (STSong-Light): a viewer supplies its glyphs, so the image needs no
font file. Short words (severity, department, status, figures) sit in columns sized to them, never one
character per line; tables repeat their head on each page, the signature block is never split and each page
is numbered in its bottom margin.
"""
from __future__ import annotations

from datetime import date, datetime
from io import BytesIO

from handlers.wording import Lang, department_name, local_time
from schemas.config import District

FONT = "STSong-Light"
RATES = ("accepted_on_time", "resolved_on_time", "on_time_handling", "closure", "rework", "followup", "satisfaction",
         "sent_back")

_WORDS = {
    "zh": {
        "title": "{district}值班日报", "weekdays": "星期一 星期二 星期三 星期四 星期五 星期六 星期日",
        "meta": "{y}年{m}月{d}日 {weekday} · 统计时段（{period}） {start} 至 {end}（{tz}） · 生成于 {now}",
        "period": {"day": "全天", "shift": "值班班次"},
        "officer": "值班员", "leader": "带班领导", "sep": "；",
        "summary": "一、总体情况", "weather": "二、天气预警与应急响应", "events": "三、红色、橙色事件及处置",
        "overdue": "四、超时工单", "open": "五、移交下一班的在办事项（红色、橙色）", "rates": "六、部门当日指标",
        "handovers": "七、交接班记录",
        "summary_text": "全天新派工单 {total} 件，上报 {reports} 次；其中红色 {red} 件、橙色 {orange} 件、黄色 {yellow} 件、"
                        "蓝色 {blue} 件。超时 {late} 件，移交下一班的红色、橙色在办事项 {open} 件。",
        "at_start": "零时应急响应：{level}", "no_level": "未启动", "level": "{level}级应急响应",
        "no_weather": "当日无天气预警，应急响应未调整。", "none": "无", "no_handover": "当日未登记交接班",
        "more_open": "另有 {n} 件未列出，见实时告警页。",
        "severity": "等级", "event": "事件", "department": "部门", "status": "状态", "handling": "处置经过",
        "dispatched_at": "派单", "missed": "超时环节", "standing": "当前情况", "dispatched": "派遣数",
        "accept": "签收", "resolve": "办结",
        "officer_sign": "值班员（签字）：", "leader_sign": "带班领导（签字）：", "sign_date": "日期：",
        "sev": {"red": "红", "orange": "橙", "yellow": "黄", "blue": "蓝"},
        "status_of": {"dispatched": "待签收", "accepted": "处置中", "resolved": "待核查", "closed": "已结案",
                      "returned": "已退回"},
        "escalation_of": {"reminded": "催办", "escalated": "督办", "reported": "通报"},
        "rate": {"accepted_on_time": "按时签收率", "resolved_on_time": "按期办结率", "on_time_handling": "按时处置率",
                 "closure": "结案率", "rework": "返工率", "followup": "回访率", "satisfaction": "满意率",
                 "sent_back": "发回重办率"},
    },
    "en": {
        "title": "{district} daily duty report", "weekdays": "Monday Tuesday Wednesday Thursday Friday Saturday Sunday",
        "meta": "{weekday} {d} {month} {y} · {period}: from {start} to {end} ({tz}) · generated {now}",
        "period": {"day": "Whole day", "shift": "Duty shift"},
        "officer": "Duty officer", "leader": "Leader on duty", "sep": "; ",
        "summary": "1. Overview", "weather": "2. Weather warnings and emergency response",
        "events": "3. Red and orange events and their handling", "overdue": "4. Tickets past a deadline",
        "open": "5. Open red and orange items handed over", "rates": "6. The day's department rates",
        "handovers": "7. Shift handovers",
        "summary_text": "{total} tickets dispatched, {reports} reports: {red} red, {orange} orange, {yellow} yellow, "
                        "{blue} blue. {late} past a deadline; {open} open red and orange items handed over.",
        "at_start": "Emergency response at midnight: {level}", "no_level": "none", "level": "level {level} emergency response",
        "no_weather": "No weather warning that day; the emergency response level did not change.", "none": "None",
        "no_handover": "No handover recorded that day", "more_open": "{n} more not listed: see the live board.",
        "severity": "Severity", "event": "Event", "department": "Department", "status": "Status", "handling": "Handling",
        "dispatched_at": "Dispatched", "missed": "Missed", "standing": "Where it stands", "dispatched": "Dispatched",
        "accept": "accept", "resolve": "resolve",
        "officer_sign": "Duty officer (signature):", "leader_sign": "Leader on duty (signature):", "sign_date": "Date:",
        "sev": {"red": "I", "orange": "II", "yellow": "III", "blue": "IV"},
        "status_of": {"dispatched": "Dispatched", "accepted": "Accepted", "resolved": "Resolved", "closed": "Closed",
                      "returned": "Returned"},
        "escalation_of": {"reminded": "Reminded", "escalated": "Escalated", "reported": "Reported"},
        "rate": {"accepted_on_time": "Accepted on time", "resolved_on_time": "Resolved on time",
                 "on_time_handling": "On-time handling", "closure": "Closure", "rework": "Rework",
                 "followup": "Follow-up", "satisfaction": "Satisfaction", "sent_back": "Sent back"},
    },
}
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December")
_COLOURS = {"red": "#c62828", "orange": "#e65100", "yellow": "#f9a825", "blue": "#1565c0"}


WIDTH_MM = 210 - 24  # A4 inside its 12 mm side margins


def grid(header: list, rows: list[list], widths: list[float | None], numeric_from: int | None = None):
    """A table across the page: fixed widths (points) for the short columns, the rest to the one that wraps
    (None), so no column narrows to a character a line; its head repeated on each page."""
    from reportlab.lib import colors
    from reportlab.lib.units import mm
    from reportlab.platypus import Table, TableStyle

    rest = WIDTH_MM * mm - sum(x for x in widths if x is not None)
    found = Table([header, *rows], colWidths=[rest if x is None else x for x in widths], repeatRows=1)
    style = [("FONT", (0, 0), (-1, -1), FONT, 9), ("GRID", (0, 0), (-1, -1), 0.5, colors.black),
             ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")), ("VALIGN", (0, 0), (-1, -1), "TOP"),
             ("TOPPADDING", (0, 0), (-1, -1), 2), ("BOTTOMPADDING", (0, 0), (-1, -1), 2)]
    if numeric_from is not None:
        style.append(("ALIGN", (numeric_from, 1), (-1, -1), "RIGHT"))
    found.setStyle(TableStyle(style))
    return found


def build(story: list, title: str, author: str) -> bytes:
    """The flowables laid out on A4 pages, each numbered "2 / 5" in its bottom margin."""
    from reportlab.lib import colors
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.pdfgen.canvas import Canvas
    from reportlab.platypus import SimpleDocTemplate

    class Numbered(Canvas):
        """The total is known once all pages are laid out: each is drawn again with its number then."""

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.laid_out: list[dict] = []

        def showPage(self):
            self.laid_out.append(dict(self.__dict__))
            self._startPage()

        def save(self):
            for state in self.laid_out:
                self.__dict__.update(state)
                self.setFont(FONT, 8)
                self.setFillColor(colors.HexColor("#555555"))
                self.drawRightString(A4[0] - 12 * mm, 7 * mm, f"{self._pageNumber} / {len(self.laid_out)}")
                super().showPage()
            super().save()

    out = BytesIO()
    doc = SimpleDocTemplate(out, pagesize=A4, leftMargin=12 * mm, rightMargin=12 * mm, topMargin=14 * mm,
                            bottomMargin=14 * mm, title=title, author=author)
    doc.build(story, canvasmaker=Numbered)
    return out.getvalue()


def render(district: District, report: dict, lang: Lang = "zh") -> bytes:
    """The report of handlers.daily.report as the bytes of an A4 PDF, in Chinese or English."""
    # Imported here: importing this module builds nothing, and the pages that never ask for a PDF never load it.
    from reportlab.lib import colors
    from reportlab.lib.enums import TA_CENTER
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.platypus import KeepTogether, Paragraph, Spacer, Table, TableStyle
    from xml.sax.saxutils import escape

    if FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FONT))
    w = _WORDS[lang]
    zh = lang == "zh"
    wrap = "CJK" if zh else None
    body = ParagraphStyle("body", fontName=FONT, fontSize=9, leading=12.5, wordWrap=wrap)
    small = ParagraphStyle("small", parent=body, fontSize=8, leading=10.5, textColor=colors.HexColor("#333333"))
    title = ParagraphStyle("title", parent=body, fontSize=17, leading=22, alignment=TA_CENTER)
    centred = ParagraphStyle("centred", parent=small, alignment=TA_CENTER)
    head = ParagraphStyle("head", parent=body, fontSize=11, leading=15, spaceBefore=7, spaceAfter=3)
    day = date.fromisoformat(report["date"])

    def p(text: str, style=body) -> Paragraph:
        return Paragraph(escape(text), style)

    def when(iso: str | None) -> str:
        if not iso:
            return "—"
        at = datetime.fromisoformat(iso)
        if at.astimezone(district.tz).date() == day:
            return f"{at.astimezone(district.tz):%H:%M}"
        return local_time(district, at, lang)

    def said(item: dict) -> str:
        return item["text"] if zh else item["text_en"]

    def status(t: dict) -> str:
        extra = w["escalation_of"].get(t["escalation"])
        return w["status_of"].get(t["status"], "") + (f" · {extra}" if extra else "")

    def event(t: dict) -> Paragraph:
        place = district.communities.get(t["community"] or "")
        where = escape(place.name) if place else ""
        return Paragraph(f"{escape(t['title'])}<br/><font size=7.5 color='#555555'>{where}</font>", body)

    def sev(value: str) -> Table:
        badge = Table([[p(w["sev"][value], ParagraphStyle("sev", parent=centred, textColor=colors.white))]],
                      colWidths=[9 * mm])
        badge.setStyle(TableStyle([("BACKGROUND", (0, 0), (-1, -1), colors.HexColor(_COLOURS[value])),
                                   ("TOPPADDING", (0, 0), (-1, -1), 0), ("BOTTOMPADDING", (0, 0), (-1, -1), 1)]))
        return badge

    def table(header: list[str], rows: list[list], widths: list[float], numeric_from: int | None = None):
        return grid([p(h, small) for h in header], rows, widths, numeric_from)

    story: list = []
    story.append(p(w["title"].format(district=district.name), title))
    story.append(p(w["meta"].format(y=day.year, m=day.month, d=day.day, month=_MONTHS[day.month - 1],
                                    weekday=w["weekdays"].split()[day.weekday()], period=w["period"][report["period"]],
                                    start=when(report["from"]),
                                    end=when(report["to"]), tz=report["timezone"], now=when(report["generated_at"])),
                   centred))
    people = []
    for role in ("officer", "leader"):
        # A stretch's ends with their dates: a shift runs from 08:30 one day to 08:30 the next.
        span = [(local_time(district, datetime.fromisoformat(x["from"]), lang),
                 local_time(district, datetime.fromisoformat(x["to"]), lang), x["name"]) for x in report["duty"].get(role, [])]
        names = [f"{name}（{a}–{b}）" if zh else f"{name} ({a}–{b})" for a, b, name in span]
        if names:
            people.append(f"{w[role]}{'：' if zh else ': '}{w['sep'].join(names)}")
    story.append(p("　".join(people) if zh else " · ".join(people), centred))
    story.append(Spacer(1, 3 * mm))

    c = report["counts"]
    story.append(p(w["summary"], head))
    story.append(p(w["summary_text"].format(total=c["total"], reports=sum(c["reports_by_source"].values()),
                                            late=len(report["overdue"]), open=report["open_items"]["total"],
                                            **c["by_severity"])))

    story.append(p(w["weather"], head))
    level = report["response"]["at_start"]
    story.append(p(w["at_start"].format(level=w["level"].format(level=level) if level else w["no_level"])))
    lines = sorted([*report["warnings"], *report["response"]["changes"]], key=lambda x: datetime.fromisoformat(x["at"]))
    for line in lines:
        story.append(p(f"• {said(line)}"))
    if not lines:
        story.append(p(w["no_weather"]))

    story.append(p(w["events"], head))
    if report["events"]:
        story.append(table(
            [w["severity"], w["event"], w["department"], w["status"], w["handling"]],
            [[sev(t["severity"]), event(t), p(department_name(district, t["department"], lang)), p(status(t)),
              Paragraph("<br/>".join(escape(said(h)) for h in t["history"]), small)] for t in report["events"]],
            [12 * mm, 46 * mm, 22 * mm, 18 * mm, None]))
    else:
        story.append(p(w["none"]))

    story.append(p(w["overdue"], head))
    if report["overdue"]:
        story.append(table(
            [w["severity"], w["event"], w["department"], w["dispatched_at"], w["missed"], w["status"]],
            [[sev(t["severity"]), event(t), p(department_name(district, t["department"], lang)),
              p(when(t["dispatched_at"])), p(("、" if zh else ", ").join(w[m] for m in t["missed"])), p(status(t))]
             for t in report["overdue"]],
            [12 * mm, None, 22 * mm, 24 * mm, 18 * mm, 18 * mm]))
    else:
        story.append(p(w["none"]))

    story.append(p(w["open"], head))
    items = report["open_items"]
    if items["tickets"]:
        story.append(table(
            [w["severity"], w["event"], w["department"], w["status"], w["standing"]],
            [[sev(t["severity"]), event(t), p(department_name(district, t["department"], lang)), p(status(t)),
              p(said(t))] for t in items["tickets"]],
            [12 * mm, None, 22 * mm, 18 * mm, 44 * mm]))
        if items["total"] > len(items["tickets"]):
            story.append(p(w["more_open"].format(n=items["total"] - len(items["tickets"])), small))
    else:
        story.append(p(w["none"]))

    story.append(p(w["rates"], head))
    pct = lambda v: "—" if v is None else f"{v * 100:.1f}%"  # noqa: E731
    story.append(table(
        [w["department"], w["dispatched"], *(w["rate"][r] for r in RATES)],
        [[p(department_name(district, row["department"], lang), small), str(row["dispatched"]),
          *(pct(row["rates"].get(r)) for r in RATES)] for row in report["departments"]],
        [None, 14 * mm, *([16 * mm] * len(RATES))], numeric_from=1))

    story.append(p(w["handovers"], head))
    for h in report["handovers"]:
        story.append(p(f"• {said(h)}"))
    if not report["handovers"]:
        story.append(p(w["no_handover"]))

    last = {role: (report["duty"].get(role) or [{}])[-1].get("name", "") for role in ("officer", "leader")}
    line = "_" * 18
    story.append(KeepTogether([Spacer(1, 10 * mm), p(
        f"{w['officer_sign']} {last['officer']} {line}　　{w['leader_sign']} {last['leader']} {line}　　"
        f"{w['sign_date']} {'_' * 12}")]))

    return build(story, w["title"].format(district=district.name) + f" {report['date']}", district.name)
