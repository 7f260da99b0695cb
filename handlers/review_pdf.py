"""The review (handlers/review.py) as an A4 PDF, drawn on the worker with ReportLab like the daily report
(handlers/daily_pdf.py: its font, its tables and its numbered pages). No I/O.

The same parts in the same order as the page /reviews prints them: the course of events (the server's own
sentences), the response times per severity and department, the notifications, and the findings and actions
with their owners and due dates, then the lines to sign.
"""
from __future__ import annotations

from datetime import datetime

import math

from handlers.daily_pdf import FONT, build, grid
from handlers.geo import centroid
from handlers.wording import Lang, community_name, department_name, local_time
from schemas.config import District

# Severity colours, as the stats page draws them (stats.js SEV_COLOURS).
SEVERITY_COLOURS = {"red": "#e53935", "orange": "#fb8c00", "yellow": "#fdd835", "blue": "#1e88e5"}


def incident_map(district: District, points: list[dict], lang: Lang, width: float, height: float, legend: dict):
    """The district's communities (district.yaml polygons) and the tickets as dots coloured by severity, on an
    equirectangular projection scaled by the cosine of the latitude (a few kilometres: straight enough)."""
    from reportlab.graphics.shapes import Circle, Drawing, Polygon, String
    from reportlab.lib import colors

    rings = [(cid, c.polygon) for cid, c in sorted(district.communities.items())]
    lons = [lon for _, ring in rings for lon, _ in ring] + [p["lon"] for p in points]
    lats = [lat for _, ring in rings for _, lat in ring] + [p["lat"] for p in points]
    drawing = Drawing(width, height)
    if not lons:
        return drawing
    squash = math.cos(math.radians(sum(lats) / len(lats)))
    key_height = 14
    span_x = max((max(lons) - min(lons)) * squash, 1e-6)
    span_y = max(max(lats) - min(lats), 1e-6)
    scale = min((width - 8) / span_x, (height - key_height - 8) / span_y)
    left = (width - span_x * scale) / 2
    bottom = key_height + (height - key_height - span_y * scale) / 2

    def xy(lon: float, lat: float) -> tuple[float, float]:
        return left + (lon - min(lons)) * squash * scale, bottom + (lat - min(lats)) * scale

    for cid, ring in rings:
        drawing.add(Polygon([v for lon, lat in ring for v in xy(lon, lat)], fillColor=colors.HexColor("#f1f5f9"),
                            strokeColor=colors.HexColor("#64748b"), strokeWidth=0.6))
    for cid, ring in rings:
        lat, lon = centroid(ring)
        x, y = xy(lon, lat)
        drawing.add(String(x, y, community_name(district, cid, lang), fontName=FONT, fontSize=6.5,
                           fillColor=colors.HexColor("#475569"), textAnchor="middle"))
    order = {"blue": 0, "yellow": 1, "orange": 2, "red": 3}  # the most severe drawn last, on top
    for point in sorted(points, key=lambda p: order[p["severity"]]):
        x, y = xy(point["lon"], point["lat"])
        drawing.add(Circle(x, y, 2.6, fillColor=colors.HexColor(SEVERITY_COLOURS[point["severity"]]),
                           strokeColor=colors.white, strokeWidth=0.4))
    x = 4
    for severity, text in legend.items():
        drawing.add(Circle(x + 3, 5, 3, fillColor=colors.HexColor(SEVERITY_COLOURS[severity]), strokeColor=None))
        drawing.add(String(x + 9, 2.5, text, fontName=FONT, fontSize=7.5))
        x += 12 + 7.5 * len(text) * (1 if lang == "zh" else 0.55)
    return drawing

_WORDS = {
    "zh": {
        "title": "{district}复盘", "level_title": "{district}{level}级应急响应复盘",
        "meta": "复盘时段 {start} 至 {end}（{tz}） · 生成于 {now}",
        "course": "一、经过", "times": "二、处置时效", "notices": "三、通知发送", "silences": "四、屏蔽与静默", "compound": "五、复合事件", "map": "六、事件分布", "findings": "七、问题与整改措施",
        "map_key": "{severity} {n} 件", "no_points": "期间无工单。",
        "no_compound": "期间无关联规则串联的工单。",
        "no_silences": "期间无屏蔽或静默。",
        "at_start": "期间开始前应急响应：{level}", "no_level": "未启动", "level": "{level}级",
        "no_course": "期间无预警、响应调整或工单。", "none": "尚未填写",
        "summary": "期间派单 {dispatched} 件（其中预防性工单 {preventive} 件）；签收超时 {late} 件，办结超时 {overdue} 件；"
                   "催办 {reminded} 件，督办 {escalated} 件，通报 {reported} 件。",
        "notifications": "共 {deliveries} 条通知：已送达 {delivered} 条，失败 {failed} 条（其中放弃 {given_up} 条），"
                         "失败尝试 {failed_attempts} 次，静默 {muted} 条。",
        "again": "预防性工单所在点位中，{n} 处在期间再次上报。",
        "lateness": "已送达的 {delivered} 条从首次发送到送达用时中位 {median}、最长 {max}，超过 1 分钟的 {over} 条。",
        "channel_type": "通道", "deliveries": "通知", "delivered": "送达", "failed": "失败", "muted": "静默",
        "opened_title": "每{slot}派单（按等级）", "hour": "小时", "day": "日",
        "accept_title": "各部门按时签收率（按时签收的工单占应签收工单的比例）",
        "late_median": "送达用时（中位）", "late_max": "最长", "over_60s": "超过 1 分钟",
        "seconds": "{n} 秒",
        "severity": "等级", "department": "部门", "dispatched": "派单", "to_ticket": "读数至派单", "to_accept": "至签收",
        "to_close": "至结案", "late": "签收超时", "overdue": "办结超时", "escalations": "催办/督办/通报",
        "median": "（中位）", "finding": "问题", "action": "整改措施", "owner": "责任部门", "due": "完成时限",
        "done": "完成", "yes": "是", "no": "否", "written": "第 {version} 版，{by} 于 {at} 填写",
        "sign": "值班员（签字）：{line}　　带班领导（签字）：{line}　　日期：{short}",
        "minutes": "{n} 分钟", "hours": "{n} 小时",
        "severities": {"red": "红色", "orange": "橙色", "yellow": "黄色", "blue": "蓝色"},
        "roman": {"I": "Ⅰ", "II": "Ⅱ", "III": "Ⅲ", "IV": "Ⅳ"},
    },
    "en": {
        "title": "{district} review", "level_title": "{district} review of the level {level} response",
        "meta": "Reviewed {start} to {end} ({tz}) · generated {now}",
        "course": "1. Course of events", "times": "2. Response times", "notices": "3. Notifications",
        "silences": "4. Silences", "no_silences": "No silence was in force in the period.",
        "compound": "5. Compound incidents", "no_compound": "No tickets were linked by a correlation rule in the period.",
        "map": "6. Where the incidents were", "map_key": "{severity} {n}", "no_points": "No ticket in the period.",
        "findings": "7. Findings and actions", "at_start": "Response level before the period: {level}",
        "no_level": "none", "level": "level {level}", "no_course": "No warning, level change or ticket in the period.",
        "none": "None written yet",
        "summary": "{dispatched} tickets dispatched ({preventive} preventive); {late} accepted late, {overdue} overdue; "
                   "{reminded} reminded, {escalated} escalated, {reported} reported to the leadership.",
        "notifications": "{deliveries} notifications: {delivered} delivered, {failed} failed ({given_up} given up), "
                         "{failed_attempts} failed attempts, {muted} muted.",
        "again": " {n} of the preventive tickets' places were reported again in the period.",
        "lateness": "The {delivered} delivered took {median} from first attempt to delivery (median), {max} at most; "
                    "{over} took longer than a minute.",
        "channel_type": "Channel", "deliveries": "Notifications", "delivered": "Delivered", "failed": "Failed",
        "opened_title": "Tickets dispatched per {slot}, by severity", "hour": "hour", "day": "day",
        "accept_title": "On-time acceptance by department (accepted in time, of the tickets due to be accepted)",
        "muted": "Muted", "late_median": "Time to deliver (median)", "late_max": "Longest", "over_60s": "Over a minute",
        "seconds": "{n} s",
        "severity": "Severity", "department": "Department", "dispatched": "Dispatched", "to_ticket": "Reading to ticket",
        "to_accept": "To acceptance", "to_close": "To closure", "late": "Accepted late", "overdue": "Overdue",
        "escalations": "Reminded/escalated/reported", "median": " (median)", "finding": "Finding", "action": "Action",
        "owner": "Owner", "due": "Due", "done": "Done", "yes": "yes", "no": "no",
        "written": "Version {version}, written by {by} at {at}",
        "sign": "Duty officer: {line}    Leader on duty: {line}    Date: {short}",
        "minutes": "{n} min", "hours": "{n} h",
        "severities": {"red": "Red", "orange": "Orange", "yellow": "Yellow", "blue": "Blue"},
        "roman": {"I": "I", "II": "II", "III": "III", "IV": "IV"},
    },
}


def opened_chart(found: dict, lang: Lang, width: float, height: float, names: dict):
    """A stacked bar per hour (day) of the period: the tickets opened, by severity, red on top."""
    from reportlab.graphics.charts.barcharts import VerticalBarChart
    from reportlab.graphics.charts.legends import Legend
    from reportlab.graphics.shapes import Drawing
    from reportlab.lib import colors

    chart = found["opened"]
    labels = chart["labels"] if lang == "zh" else chart["labels_en"]
    order = ["blue", "yellow", "orange", "red"]
    drawing = Drawing(width, height)
    bars = VerticalBarChart()
    bars.x, bars.y, bars.width, bars.height = 28, 30, width - 40, height - 50
    bars.data = [chart["by_severity"][s] for s in order]
    bars.categoryAxis.style = "stacked"
    # At most about a dozen labels along the axis: every n-th slot named.
    every = max(1, -(-len(labels) // 12))
    bars.categoryAxis.categoryNames = [text if n % every == 0 else "" for n, text in enumerate(labels)]
    bars.categoryAxis.labels.fontName = FONT
    bars.categoryAxis.labels.fontSize = 6.5
    bars.categoryAxis.labels.angle = 30 if len(labels) > 8 else 0
    bars.categoryAxis.labels.boxAnchor = "ne" if len(labels) > 8 else "n"
    bars.valueAxis.valueMin = 0
    most = max([sum(col) for col in zip(*bars.data)] or [0])
    bars.valueAxis.valueMax = max(4, most)
    bars.valueAxis.valueStep = max(1, -(-bars.valueAxis.valueMax // 4))
    bars.valueAxis.labels.fontName = FONT
    bars.valueAxis.labels.fontSize = 7
    bars.barSpacing = 0.5
    for n, severity in enumerate(order):
        bars.bars[n].fillColor = colors.HexColor(SEVERITY_COLOURS[severity])
        bars.bars[n].strokeColor = None
    drawing.add(bars)
    legend = Legend()
    legend.x, legend.y = 30, height - 6
    legend.alignment = "right"
    legend.columnMaximum = 1
    legend.fontName, legend.fontSize = FONT, 7.5
    legend.dx = legend.dy = 6
    legend.deltax = 60
    legend.colorNamePairs = [(colors.HexColor(SEVERITY_COLOURS[s]), names[s]) for s in reversed(order)]
    drawing.add(legend)
    return drawing


def acceptance_chart(district: District, departments: list[dict], lang: Lang, width: float, height: float):
    """Each department's on-time acceptance rate (performance's `accepted_on_time`) as a bar, 0-100 %."""
    from reportlab.graphics.charts.barcharts import HorizontalBarChart
    from reportlab.graphics.shapes import Drawing
    from reportlab.lib import colors

    rows = [row for row in departments if row["rates"].get("accepted_on_time") is not None]
    drawing = Drawing(width, height)
    if not rows:
        return drawing
    bars = HorizontalBarChart()
    bars.x, bars.y, bars.width, bars.height = 95, 14, width - 130, height - 20
    bars.data = [[round(row["rates"]["accepted_on_time"] * 100, 1) for row in reversed(rows)]]
    bars.categoryAxis.categoryNames = [department_name(district, row["department"], lang) for row in reversed(rows)]
    bars.categoryAxis.labels.fontName = FONT
    bars.categoryAxis.labels.fontSize = 7.5
    bars.valueAxis.valueMin, bars.valueAxis.valueMax, bars.valueAxis.valueStep = 0, 100, 20
    bars.valueAxis.labels.fontName = FONT
    bars.valueAxis.labels.fontSize = 7
    bars.valueAxis.labelTextFormat = "%d%%"
    bars.bars[0].fillColor = colors.HexColor("#1e88e5")
    bars.bars[0].strokeColor = None
    bars.barLabelFormat = "%.0f%%"
    bars.barLabels.fontName = FONT
    bars.barLabels.fontSize = 7
    bars.barLabels.boxAnchor = "w"
    bars.barLabels.dx = 3
    drawing.add(bars)
    return drawing


def render(district: District, found: dict, lang: Lang = "zh") -> bytes:
    """A review as served by the API (with `written`, and `level_period` for a level period's) as A4 PDF bytes."""
    # Imported here: importing this module builds nothing, and the pages that never ask for a PDF never load it.
    from reportlab.lib import colors
    from reportlab.lib.enums import TA_CENTER
    from reportlab.lib.styles import ParagraphStyle
    from reportlab.lib.units import mm
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.platypus import KeepTogether, Paragraph, Spacer
    from xml.sax.saxutils import escape

    if FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FONT))
    w = _WORDS[lang]
    zh = lang == "zh"
    body = ParagraphStyle("body", fontName=FONT, fontSize=9, leading=12.5, wordWrap="CJK" if zh else None)
    small = ParagraphStyle("small", parent=body, fontSize=8, leading=10.5, textColor=colors.HexColor("#333333"))
    title = ParagraphStyle("title", parent=body, fontSize=17, leading=22, alignment=TA_CENTER)
    centred = ParagraphStyle("centred", parent=small, alignment=TA_CENTER)
    head = ParagraphStyle("head", parent=body, fontSize=11, leading=15, spaceBefore=7, spaceAfter=3)

    def p(text: str, style=body) -> Paragraph:
        return Paragraph(escape(text), style)

    def when(iso: str | None) -> str:
        return local_time(district, datetime.fromisoformat(iso), lang) if iso else "—"

    def span(seconds: float | None) -> str:
        if seconds is None:
            return "—"
        minutes = seconds / 60
        return w["minutes"].format(n=round(minutes)) if minutes < 120 else w["hours"].format(n=f"{minutes / 60:.1f}")

    level = found.get("level_period")
    heading = (w["level_title"].format(district=district.name, level=w["roman"][level["highest"]]) if level
               else w["title"].format(district=district.name))
    story: list = [p(heading, title), p(w["meta"].format(start=when(found["from"]), end=when(found["to"]),
                                                         tz=found["timezone"], now=when(found["generated_at"])), centred),
                   Spacer(1, 3 * mm)]

    story.append(p(w["course"], head))
    before = found["level_at_start"]
    story.append(p(w["at_start"].format(level=w["level"].format(level=w["roman"][before]) if before else w["no_level"])))
    for line in found["timeline"]:
        story.append(p(f"• {line['text'] if zh else line['text_en']}"))
    if not found["timeline"]:
        story.append(p(w["no_course"]))

    story.append(p(w["times"], head))
    measures = found["measures"]
    every = measures["district"] or {"dispatched": 0, "preventive": 0, "accepted_late": 0, "overdue": 0,
                                     "reminded": 0, "escalated": 0, "reported": 0}
    again = sum(bool(line["reported_again"]) for line in found["preventive"])
    story.append(p(w["summary"].format(late=every["accepted_late"], **{k: every[k] for k in (
        "dispatched", "preventive", "overdue", "reminded", "escalated", "reported")})
        + (w["again"].format(n=again) if found["preventive"] else "")))
    header = [w["dispatched"], *(w[t] + w["median"] for t in ("to_ticket", "to_accept", "to_close")), w["late"],
              w["overdue"], w["escalations"]]

    def rows(found_rows: list[dict], name) -> list[list]:
        return [[p(name(row), small), str(row["dispatched"]),
                 *(span(row["times"][t]["median_s"]) for t in ("to_ticket", "to_accept", "to_close")),
                 str(row["accepted_late"]), str(row["overdue"]),
                 f"{row['reminded']}/{row['escalated']}/{row['reported']}"] for row in found_rows]

    widths = [None, 14 * mm, 22 * mm, 22 * mm, 22 * mm, 16 * mm, 16 * mm, 24 * mm]
    if measures["severities"]:
        story.append(grid([p(h, small) for h in (w["severity"], *header)],
                          rows(measures["severities"], lambda row: w["severities"][row["department"]]), widths, 1))
        story.append(Spacer(1, 2 * mm))
        story.append(grid([p(h, small) for h in (w["department"], *header)],
                          rows(measures["departments"], lambda row: department_name(district, row["department"], lang)),
                          widths, 1))
        story.append(KeepTogether([p(w["opened_title"].format(slot=w[found["opened"]["slot"]]), small),
                                   opened_chart(found, lang, 170 * mm, 55 * mm, w["severities"])]))
        story.append(KeepTogether([p(w["accept_title"], small), acceptance_chart(
            district, measures["departments"], lang, 170 * mm, (12 + 7 * len(measures["departments"])) * mm)]))

    story.append(p(w["notices"], head))
    notices = found["notifications"]
    story.append(p(w["notifications"].format(**notices)))

    def wait(seconds: float | None) -> str:
        return w["seconds"].format(n=round(seconds)) if seconds is not None and seconds < 120 else span(seconds)

    late = notices["lateness"]
    if late["delivered"]:
        story.append(p(w["lateness"].format(delivered=late["delivered"], median=wait(late["median_s"]),
                                            max=wait(late["max_s"]), over=late["over_60s"])))
    if notices["by_channel_type"]:
        story.append(grid([p(w[h], small) for h in ("channel_type", "deliveries", "delivered", "failed", "muted",
                                                     "late_median", "late_max", "over_60s")],
                          [[p(row["name"] if zh else row["name_en"], small), str(row["deliveries"]),
                            str(row["delivered"]), str(row["failed"]), str(row["muted"]),
                            wait(row["lateness"]["median_s"]), wait(row["lateness"]["max_s"]),
                            str(row["lateness"]["over_60s"])] for row in notices["by_channel_type"].values()],
                          [None, 16 * mm, 16 * mm, 16 * mm, 16 * mm, 28 * mm, 20 * mm, 22 * mm], 1))

    story.append(p(w["silences"], head))
    for line in found["silences"]:
        story.append(p(f"• {line['text'] if zh else line['text_en']}"))
        if line["tickets"]:
            story.append(p("　" + "、".join(line["tickets"]) if zh else "  " + ", ".join(line["tickets"]), small))
    if not found["silences"]:
        story.append(p(w["no_silences"]))

    story.append(p(w["compound"], head))
    for line in found["compound"]:
        story.append(p(f"• {line['text'] if zh else line['text_en']}"))
    if not found["compound"]:
        story.append(p(w["no_compound"]))

    story.append(p(w["map"], head))
    points = found["points"]
    if points:
        counts = {s_: sum(pt["severity"] == s_ for pt in points) for s_ in SEVERITY_COLOURS}
        legend = {s_: w["map_key"].format(severity=w["severities"][s_], n=n) for s_, n in counts.items() if n}
        story.append(incident_map(district, points, lang, 170 * mm, 95 * mm, legend))
    else:
        story.append(p(w["no_points"]))

    story.append(p(w["findings"], head))
    written = found["written"]
    if written["findings"]:
        story.append(grid([p(h, small) for h in (w["finding"], w["action"], w["owner"], w["due"], w["done"])],
                          [[p(f["finding"]), p(f["action"]), p(department_name(district, f["owner"], lang), small),
                            f["due"], w["yes"] if f["done"] else w["no"]] for f in written["findings"]],
                          [None, 62 * mm, 30 * mm, 20 * mm, 12 * mm]))
        story.append(p(w["written"].format(version=written["version"], by=written["by"], at=when(written["at"])), small))
    else:
        story.append(p(w["none"]))

    story.append(KeepTogether([Spacer(1, 10 * mm), p(w["sign"].format(line="_" * 18, short="_" * 12))]))
    return build(story, heading, district.name)
