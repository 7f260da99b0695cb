"""The leadership view (/stats) and the daily duty report (/stats/daily) in the real headless Chromium:
every chart's plotted figures (read back from ECharts) equal /api/performance and /api/stats for a
scripted set of tickets, each chart's CSV holds exactly those figures, the report's counts for a scripted
day, a department refused; screenshots in tests/artifacts."""
from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import pytest
from playwright.sync_api import expect

from tests.integration.test_hotspots_api import reports
from tests.integration.test_stats_api import plan_tasks, scripted_day, send_at
from tests.support import DUTY_OFFICER, poll

pytestmark = pytest.mark.integration

CST = timezone(timedelta(hours=8))
RATES = ["on_time_handling", "closure", "rework", "satisfaction"]
CHARTS = ["rates-7", "rates-30", "trend", "hourly-source", "hourly-severity", "hotspots", "seasons-week", "seasons-hour",
          "recurring", "age"]


def signed_in(pages, pipeline, path: str, department: str = "district_leadership"):
    """The page signed in as a new user of `department` (a leader of the leadership, a clerk elsewhere)."""
    page = pages._page({"width": 1920, "height": 1080})
    page.goto(f"{pipeline.worker.url}{path}")
    pages.sign_in(page, pages.user(department))
    return page


def plotted(page, chart: str) -> dict[str, list]:
    """Series id -> the data ECharts holds for that chart."""
    return page.evaluate("""id => {
        const node = document.querySelector(`.chart-card[data-chart="${id}"] .chart`);
        const option = echarts.getInstanceByDom(node).getOption();
        return Object.fromEntries(option.series.map(s => [s.id, s.data.map(v => (v === '-' ? null : v))]));
    }""", chart)


def pct(rate):
    return None if rate is None else round(rate * 100, 2)


def test_every_chart_plots_the_api_figures_and_exports_them_as_csv(pipeline, pages, build, artifacts):
    _, scripted = scripted_day(pipeline, build, days_ago=2)
    plan_tasks(pipeline, scripted["red"])   # the accident's pre-plan tasks are the period's tickets too
    blue = scripted["yellow"]   # closed late: the closure rate moves, the on-time rate does not
    for action, department, body in [("accept", blue.department, {}),
                                      ("resolve", blue.department, {"resolution": "已处置"}),
                                      ("verify", DUTY_OFFICER, {"passed": True})]:
        assert pipeline.post(f"/api/tickets/{blue.ticket_id}/{action}", department, body)[0] == 200
    page = signed_in(pages, pipeline, "/stats")

    def rates_agree() -> dict | None:
        """The department rates, 7 and 30 days: exactly /api/performance for the same period. The stack is
        shared: a deadline passing or another test's ticket between the page's read and the API's changes a
        rate, so both are read again until they agree."""
        expect(page.locator("body")).to_have_attribute("data-drawn", re.compile(r"^[1-9]"), timeout=15_000)
        data = page.evaluate("window.SOC_STATS.data")
        for days in ("7", "30"):
            window = data["performance"][days]
            status, perf = pipeline.get(f"/api/performance?from={quote(window['from'])}&to={quote(window['to'])}",
                                        "ops_centre")
            assert status == 200
            series = plotted(page, f"rates-{days}")
            rows = perf["departments"]
            assert rows, "no department figures"
            labels = page.evaluate("""id => echarts.getInstanceByDom(document.querySelector(
                `.chart-card[data-chart="${id}"] .chart`)).getOption().xAxis[0].data""", f"rates-{days}")
            if (any(series[rate] != [pct(r["rates"][rate]) for r in rows] for rate in RATES)
                    or len(labels) != len(rows)):
                page.reload()
                return None
        return data

    data = poll(rates_agree, 60, "the plotted rates equal to /api/performance's", interval=0.5)
    assert scripted["red"].department in [r["department"] for r in data["performance"]["7"]["departments"]]
    closed_row = next(r for r in data["performance"]["7"]["departments"] if r["department"] == blue.department)
    assert closed_row["closed"] >= 1 and closed_row["rates"]["closure"] > 0

    # The other charts: the figures of /api/stats.
    trend = plotted(page, "trend")
    assert trend["dispatched"] == data["daily"]["dispatched"]
    assert trend["closure"] == [pct(v) for v in data["daily"]["closure"]]
    two_days_ago = (datetime.now(CST) - timedelta(days=2)).date().isoformat()
    assert trend["dispatched"][data["daily"]["days"].index(two_days_ago)] >= 3
    assert plotted(page, "hourly-source") == data["hourly"]["by_source"]
    assert plotted(page, "hourly-severity") == data["hourly"]["by_severity"]
    assert plotted(page, "age") == data["open_by_age"]["by_severity"]
    hot = plotted(page, "hotspots")
    assert hot["reports"] == [h["reports"] for h in reversed(data["hotspots"])]

    # Each chart's CSV: the same figures as the chart, a header row first.
    for chart in CHARTS:
        with page.expect_download() as info:
            page.click(f'.chart-card[data-chart="{chart}"] button.csv')
        download = info.value
        assert download.suggested_filename.startswith(f"{chart}-") and download.suggested_filename.endswith(".csv")
        text = open(download.path(), encoding="utf-8-sig").read()
        rows = list(csv.reader(io.StringIO(text)))
        table = page.evaluate("id => window.SOC_STATS.charts[id]", chart)
        assert rows[0] == table["columns"]
        assert rows[1:] == [["" if v is None else (str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))
                             for v in r] for r in table["rows"]], chart
        if chart == "rates-30":
            by_dept = {r[0]: r for r in rows[1:]}
            perf_row = next(r for r in data["performance"]["30"]["departments"] if r["department"] == scripted["red"].department)
            assert by_dept[scripted["red"].department][-1] == str(perf_row["dispatched"])
    expect(page.locator("#error")).to_be_hidden()
    page.screenshot(path=str(artifacts / "stats-1920x1080.png"), full_page=True)


def test_the_map_draws_each_recurring_place_of_the_api_with_chinese_labels(pipeline, pages, build, artifacts):
    three = reports(pipeline, build, "guiwan", [10, 5, 1])
    page = signed_in(pages, pipeline, "/stats")
    expect(page.locator("body")).to_have_attribute("data-drawn", re.compile(r"^[1-9]"), timeout=15_000)
    recurring = page.evaluate("window.SOC_STATS.recurring")
    mine = next(i for i, p in enumerate(recurring["places"]) if p["ticket_ids"][0] == three[-1].ticket_id)
    # The layer: one point per place of /api/hotspots, at its place, sized by its count, on the district's map.
    points = plotted(page, "recurring")["places"]
    assert points == [[p["lon"], p["lat"], p["count"]] for p in recurring["places"]]
    assert points[mine] == [three[0].lon, three[0].lat, 3]
    geo = page.evaluate("""() => {
        const chart = echarts.getInstanceByDom(document.querySelector('.chart-card[data-chart="recurring"] .chart'));
        return {map: chart.getOption().geo[0].map, names: echarts.getMap(chart.getOption().geo[0].map).geoJSON.features
                .map(f => f.properties.name)};
    }""")
    assert "桂湾社区" in geo["names"] and len(geo["names"]) == len(pipeline.config.district.communities), geo
    title = page.locator('.chart-card[data-chart="recurring"] h2')
    expect(title).to_have_text("高发点位地图（100 米内同类问题近 30 天 3 次及以上，或近 3 场风雨每场都有）")
    # What a person reads of the place: the category's name, local dates in Chinese, the department's name.
    row = page.evaluate("id => window.SOC_STATS.charts[id].rows", "recurring")[mine]
    dates = [(datetime.now(CST) - timedelta(days=d)).date() for d in (1, 5, 10)]
    assert row[1] == "道路破损" and row[4:7] == [3, 0, 3]
    assert row[7] == "、".join(f"{d.month}月{d.day}日" for d in dates)
    assert row[8] == page.evaluate("window.SOC.departmentName('city_management')") != "city_management"
    card = page.locator('.chart-card[data-chart="recurring"]')
    card.scroll_into_view_if_needed()
    box = card.locator(".chart").bounding_box()
    at = page.evaluate("""([id, i]) => {
        const chart = echarts.getInstanceByDom(document.querySelector(`.chart-card[data-chart="${id}"] .chart`));
        const p = chart.getOption().series[0].data[i];
        return chart.convertToPixel({geoIndex: 0}, [p[0], p[1]]);
    }""", ["recurring", mine])
    page.mouse.move(box["x"] + at[0], box["y"] + at[1])
    tip = page.locator("text=道路破损").last
    expect(tip).to_be_visible()
    expect(page.locator(f"text=最近发生：{dates[0].month}月{dates[0].day}日").last).to_be_visible()
    expect(page.locator("#error")).to_be_hidden()
    page.screenshot(path=str(artifacts / "stats-recurring-places.png"), full_page=True)


def test_the_seasonal_chart_plots_each_categorys_weeks_and_hours_of_the_api(pipeline, pages, build, artifacts):
    """季节规律: every category stacked by default, one picked from the list; the figures those of
    GET /api/stats/seasons, with the two manhole reports scripted at 07h four days ago among them."""
    day = (datetime.now(CST) - timedelta(days=4)).date()
    refs = []
    for community, minute in (("haibin", 20), ("yugang", 50)):
        at = datetime(day.year, day.month, day.day, 7, minute, tzinfo=CST)
        report = build.city(community, category="manhole_cover_missing", description="井盖缺失", reported_at=at.isoformat())
        send_at(pipeline, "soc.raw.city", report, at)
        refs.append(report["case_no"])
    poll(lambda: all(pipeline.tickets_where(lambda t, ref=ref: t.source_ref == ref) for ref in refs), 30, "two manhole tickets")
    page = signed_in(pages, pipeline, "/stats")
    expect(page.locator("body")).to_have_attribute("data-drawn", re.compile(r"^[1-9]"), timeout=15_000)
    seasonal = page.evaluate("window.SOC_STATS.seasonal")
    every = {c["category"]: c for c in seasonal["categories"]}
    assert plotted(page, "seasons-week") == {k: c["by_week"] for k, c in every.items()}
    assert plotted(page, "seasons-hour") == {k: c["by_hour"] for k, c in every.items()}
    manhole = every["city_manhole"]
    assert manhole["by_hour"][7] >= 2 and manhole["by_week"][day.isocalendar().week - 1] >= 2

    page.select_option("#season-category", "city_manhole")
    expect(page.locator('.chart-card[data-chart="seasons-week"]')).to_have_attribute("data-rows", "53")
    status, api = pipeline.get("/api/stats/seasons?category=city_manhole", "ops_centre")
    assert status == 200 and api["categories"][0]["by_week"] == manhole["by_week"]
    poll(lambda: list(plotted(page, "seasons-week")) == ["city_manhole"], 5, "one category plotted")
    assert plotted(page, "seasons-week") == {"city_manhole": api["categories"][0]["by_week"]}
    assert plotted(page, "seasons-hour") == {"city_manhole": api["categories"][0]["by_hour"]}
    # What a person reads: the category's name, weeks and hours as people say them, the span in local dates.
    names = page.evaluate("""id => {
        const option = echarts.getInstanceByDom(document.querySelector(`.chart-card[data-chart="${id}"] .chart`)).getOption();
        return [option.series.map(s => s.name), option.xAxis[0].data];
    }""", "seasons-week")
    assert names[0] == ["井盖缺失"] and names[1][:2] == ["第1周", "第2周"] and len(names[1]) == 53
    first, last = (datetime.fromisoformat(seasonal[k]).date() for k in ("from", "to"))
    expect(page.locator('.chart-card[data-chart="seasons-week"] h2')).to_have_text(
        f"季节规律：各周上报数（{first.month}月{first.day}日 至 {last.month}月{last.day}日，历年同周合计）")
    expect(page.locator('.chart-card[data-chart="seasons-hour"] h2')).to_have_text("季节规律：各时段上报数（0–23 时）")
    page.locator('.chart-card[data-chart="seasons-week"]').scroll_into_view_if_needed()
    expect(page.locator("#error")).to_be_hidden()
    page.screenshot(path=str(artifacts / "stats-seasons.png"), full_page=True)


def test_the_daily_report_page_counts_a_scripted_day_and_prints(pipeline, pages, build, artifacts):
    day, scripted = scripted_day(pipeline, build, days_ago=20)
    red_id = scripted["red"].ticket_id
    tasks = plan_tasks(pipeline, scripted["red"])
    page = signed_in(pages, pipeline, f"/stats/daily?date={day}", "ops_centre")
    expect(page.locator("body")).to_have_attribute("data-date", day, timeout=15_000)
    shown = datetime.fromisoformat(day)
    expect(page.locator("#report-meta")).to_contain_text(f"{shown.year}年{shown.month}月{shown.day}日")
    total = page.locator('#counts tr[data-source="total"] td')
    # 来源, 红 橙 黄 蓝, 合计, 上报次数
    cells = total.all_text_contents()
    expected = {"red": 0, "orange": 0, "yellow": 0, "blue": 0}
    for t in [*scripted.values(), *tasks]:
        expected[t.severity.value] += 1
    assert cells[1:6] == [str(expected[s]) for s in ("red", "orange", "yellow", "blue")] + [str(3 + len(tasks))]
    red_rows = page.locator("#events tbody tr")
    expect(red_rows).to_have_count(1 + sum(t.severity.value in ("red", "orange") for t in tasks))
    red_row = page.locator(f'#events tr[data-ticket-id="{red_id}"]')
    # 处置经过 in people's words at the district's local time (handlers/wording.py), no machine text.
    handling = red_row.locator("td").last
    expect(handling).to_contain_text("系统派单至")
    said = handling.inner_text()
    assert re.match(r"\d{1,2}月\d{1,2}日 \d{2}:\d{2} ", said), said
    assert not re.search(r"pipeline|dispatch|->|\d{4}-\d{2}-\d{2}T|\+00:00", said), said
    # Nobody took them: twenty days on, each missed both deadlines.
    expect(page.locator("#overdue tbody tr")).to_have_count(3 + len(tasks))
    for t in scripted.values():
        expect(page.locator(f'#overdue tr[data-ticket-id="{t.ticket_id}"]')).to_have_attribute("data-missed", "accept resolve")
    assert "13800138000" not in page.content()
    page.emulate_media(media="print")
    expect(page.locator("header.topbar")).to_be_hidden()
    page.screenshot(path=str(artifacts / "daily-report-print.png"), full_page=True)

    # Another day from the date field.
    page.emulate_media(media="screen")
    other = (datetime.fromisoformat(day) + timedelta(days=1)).date().isoformat()
    page.fill("#date", other)
    page.locator("#date").dispatch_event("change")
    expect(page.locator("body")).to_have_attribute("data-date", other)
    assert f"date={other}" in page.url


def test_a_department_user_is_refused_by_the_leadership_view(pipeline, pages):
    page = signed_in(pages, pipeline, "/stats", "flood_control")
    expect(page.locator("#error")).to_be_visible()
    expect(page.locator("#error .message")).to_contain_text("该账号不是运行中心或街道领导的账号")
    expect(page.locator("#main")).to_be_hidden()
    poll(lambda: pipeline.get("/api/stats", "flood_control")[0] == 403, 5, "the API refusing it too")
