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

from tests.integration.test_stats_api import scripted_day
from tests.support import poll

pytestmark = pytest.mark.integration

CST = timezone(timedelta(hours=8))
RATES = ["on_time_handling", "closure", "rework", "satisfaction"]
CHARTS = ["rates-7", "rates-30", "trend", "hourly-source", "hourly-severity", "hotspots", "age"]


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
    blue = scripted["yellow"]   # closed late: the closure rate moves, the on-time rate does not
    for action, department, body in [("accept", blue.department, {}),
                                      ("resolve", blue.department, {"resolution": "已处置"}),
                                      ("verify", "ops_centre", {"passed": True})]:
        assert pipeline.post(f"/api/tickets/{blue.ticket_id}/{action}", department, body)[0] == 200
    page = signed_in(pages, pipeline, "/stats")
    expect(page.locator("body")).to_have_attribute("data-drawn", re.compile(r"^[1-9]"), timeout=15_000)
    data = page.evaluate("window.SOC_STATS.data")

    # The department rates, 7 and 30 days: exactly /api/performance for the same period.
    for days in ("7", "30"):
        window = data["performance"][days]
        status, perf = pipeline.get(f"/api/performance?from={quote(window['from'])}&to={quote(window['to'])}", "ops_centre")
        assert status == 200
        series = plotted(page, f"rates-{days}")
        rows = perf["departments"]
        assert rows, "no department figures"
        for rate in RATES:
            assert series[rate] == [pct(r["rates"][rate]) for r in rows], (days, rate)
        labels = page.evaluate("""id => echarts.getInstanceByDom(document.querySelector(
            `.chart-card[data-chart="${id}"] .chart`)).getOption().xAxis[0].data""", f"rates-{days}")
        assert len(labels) == len(rows)
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


def test_the_daily_report_page_counts_a_scripted_day_and_prints(pipeline, pages, build, artifacts):
    day, scripted = scripted_day(pipeline, build, days_ago=20)
    page = signed_in(pages, pipeline, f"/stats/daily?date={day}", "ops_centre")
    expect(page.locator("body")).to_have_attribute("data-date", day, timeout=15_000)
    expect(page.locator("#report-title")).to_contain_text(day)
    total = page.locator('#counts tr[data-source="total"] td')
    # 来源, 红 橙 黄 蓝, 合计, 上报次数
    cells = total.all_text_contents()
    expected = {"red": 0, "orange": 0, "yellow": 0, "blue": 0}
    for t in scripted.values():
        expected[t.severity.value] += 1
    assert cells[1:6] == [str(expected[s]) for s in ("red", "orange", "yellow", "blue")] + ["3"]
    traffic = page.locator('#counts tr[data-source="traffic"] td').all_text_contents()
    assert traffic[1:6] == ["1", "0", "1", "0", "2"]
    red_rows = page.locator("#red tbody tr")
    expect(red_rows).to_have_count(1)
    expect(red_rows.first).to_have_attribute("data-ticket-id", scripted["red"].ticket_id)
    expect(page.locator("#overdue tbody tr")).to_have_count(3)
    expect(page.locator("#overdue tbody tr").first).to_have_attribute("data-missed", "accept resolve")
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
