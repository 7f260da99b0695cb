"""The leadership view's API through the real stack: GET /api/stats (the department rates the same as
/api/performance, the hourly, hot-spot and age figures) and GET /api/stats/daily for a scripted day (its
reports sent with Kafka timestamps on that day, so no other test's tickets fall in it), and their refusals."""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import pytest

from tests.support import poll

pytestmark = pytest.mark.integration

CST = timezone(timedelta(hours=8))


def send_at(pipeline, topic: str, payload: dict, when: datetime) -> None:
    """A raw report that reached Kafka at `when` (its record timestamp is the ticket's dispatch time)."""
    pipeline.producer.send(topic, value=json.dumps(payload, ensure_ascii=False).encode(),
                           timestamp_ms=int(when.timestamp() * 1000))
    pipeline.producer.flush()


def scripted_day(pipeline, build, days_ago: int) -> tuple[str, dict]:
    """A red and a yellow traffic accident and a hotline case, dispatched at 09:00-09:20 of a day `days_ago`
    ago. No station: a flood station silent since then would open device_offline tickets on that day too."""
    day = (datetime.now(CST) - timedelta(days=days_ago)).date()
    at = datetime(day.year, day.month, day.day, 9, 0, tzinfo=CST)
    red = build.traffic(road="望海路", injuries=3)
    yellow = build.traffic("yugang", road="渔港路")
    case = build.city()
    send_at(pipeline, "soc.raw.traffic", red, at)
    send_at(pipeline, "soc.raw.traffic", yellow, at + timedelta(minutes=10))
    send_at(pipeline, "soc.raw.city", case, at + timedelta(minutes=20))
    refs = {"red": red["event_id"], "yellow": yellow["event_id"], "city": case["case_no"]}

    def three():
        found = {name: pipeline.tickets_where(lambda t, ref=ref: t.source_ref == ref) for name, ref in refs.items()}
        return all(found.values()) and {name: found[name][0] for name in found}

    tickets = poll(three, 30, "the scripted day's three tickets")
    assert (tickets["red"].severity.value, tickets["yellow"].severity.value) == ("red", "yellow")
    return day.isoformat(), tickets


def test_stats_rates_are_the_performance_figures_and_every_chart_has_its_figures(pipeline, build):
    _, scripted = scripted_day(pipeline, build, days_ago=3)
    status, stats = pipeline.get("/api/stats", "ops_centre")
    assert status == 200, stats
    for days in ("7", "30"):
        window = stats["performance"][days]

        def same() -> bool:
            status, stats = pipeline.get("/api/stats", "ops_centre")
            window = stats["performance"][days]
            _, perf = pipeline.get(f"/api/performance?from={quote(window['from'])}&to={quote(window['to'])}", "ops_centre")
            # A deadline passing between the two calls changes the due counts: try again then.
            return perf["departments"] == window["departments"]

        poll(same, 10, f"the {days}-day rates to equal /api/performance")
        assert datetime.fromisoformat(window["to"]) - datetime.fromisoformat(window["from"]) == timedelta(days=int(days), seconds=1)
    dept = scripted["red"].department
    row = next(r for r in stats["performance"]["7"]["departments"] if r["department"] == dept)
    assert row["dispatched"] >= 1 and set(row["rates"]) >= {"on_time_handling", "closure", "rework", "satisfaction"}
    assert len(stats["daily"]["days"]) == 30 and len(stats["daily"]["closure"]) == 30
    three_days_ago = (datetime.now(CST) - timedelta(days=3)).date().isoformat()
    assert stats["daily"]["dispatched"][stats["daily"]["days"].index(three_days_ago)] >= 3
    assert len(stats["hourly"]["hours"]) == 48 and set(stats["hourly"]["by_source"]) == {"traffic", "flood", "city", "construction"}
    assert sum(stats["open_by_age"]["by_severity"]["red"]) >= 1
    assert stats["open_by_age"]["buckets"] == ["lt1h", "1to4h", "4to24h", "1to3d", "gt3d"]
    # The scripted red ticket is 3 days old: in the "1-3 d" or "> 3 d" bucket, not in the first hours.
    hot = {h["dedup_key"]: h for h in stats["hotspots"]}
    assert len(stats["hotspots"]) <= 10 and all(h["reports"] >= 1 for h in hot.values())


def plan_tasks(pipeline, red) -> list:
    """The task tickets of the pre-plan a red traffic accident starts (plans.yaml), once all are open: they
    are the accident's day's tickets too."""
    plan = next(p for p in pipeline.config.plans.plans
                if p.trigger.by == "ticket" and p.trigger.category.value == "traffic_accident")
    return poll(lambda: (found := pipeline.tickets_where(lambda t: t.source_ref.endswith(f"@{red.ticket_id}")))
                and len(found) == len(plan.tasks) and found, 30, "the pre-plan's task tickets")


def test_the_daily_report_of_a_scripted_day(pipeline, build):
    day, scripted = scripted_day(pipeline, build, days_ago=12)
    every = [*scripted.values(), *plan_tasks(pipeline, scripted["red"])]
    status, report = pipeline.get(f"/api/stats/daily?date={day}", "district_leadership")
    assert status == 200, report
    counts = report["counts"]
    assert counts["total"] == len(every)
    assert counts["by_source"] == {s: sum(t.source.value == s for t in every) for s in ("traffic", "flood", "city", "construction")}
    assert counts["by_severity"] == {v: sum(t.severity.value == v for t in every) for v in ("red", "orange", "yellow", "blue")}
    assert counts["matrix"]["traffic"]["yellow"] == 1
    assert counts["matrix"]["city"][scripted["city"].severity.value] == 1
    # The red and orange ones, red first, then by dispatch time: the accident before the tasks it started.
    urgent = sorted((t for t in every if t.severity.value in ("red", "orange")),
                    key=lambda t: (t.severity.value != "red", t.dispatched_at, t.ticket_id))
    assert [t["ticket_id"] for t in report["events"]] == [t.ticket_id for t in urgent]
    accident = next(t for t in report["events"] if t["ticket_id"] == scripted["red"].ticket_id)
    assert accident["history"][0]["kind"] == "dispatch"
    assert re.fullmatch(r"\d{1,2}月\d{1,2}日 \d{2}:\d{2} 系统派单至\S+", accident["history"][0]["text"])
    # Nobody accepted them: twelve days on, every one missed both deadlines.
    assert sorted((t["ticket_id"], t["missed"]) for t in report["overdue"]) == sorted(
        (t.ticket_id, ["accept", "resolve"]) for t in every)
    assert sum(r["dispatched"] for r in report["departments"]) == len(every)
    assert report["from"] == f"{day}T00:00:00+08:00" and report["to"].startswith(
        (datetime.fromisoformat(day) + timedelta(days=1)).date().isoformat())
    # Personal data: the hotline case's phone number never appears.
    assert "13800138000" not in json.dumps(report, ensure_ascii=False)


def test_the_report_of_a_duty_officers_shift(pipeline):
    # deploy/config: the officer's shift runs 08:30 to 08:30 the next day, from 2026-11-30 on.
    yesterday = (datetime.now(CST) - timedelta(days=1)).date()
    status, report = pipeline.get(f"/api/stats/daily?date={yesterday}&period=shift", "district_leadership")
    assert status == 200, report
    assert (report["period"], report["from"]) == ("shift", f"{yesterday}T08:30:00+08:00")
    assert report["to"] == f"{yesterday + timedelta(days=1)}T08:30:00+08:00"
    [officer] = report["duty"]["officer"]
    assert (officer["from"], officer["to"]) == (report["from"], report["to"])
    status, body = pipeline.get("/api/stats/daily?date=2026-11-01&period=shift", "ops_centre")
    assert (status, body["error"]) == (400, "no duty officer's shift starts on 2026-11-01")
    status, body = pipeline.get("/api/stats/daily?period=week", "ops_centre")
    assert (status, body["error"]) == (400, "period must be day or shift")


def test_stats_refusals_are_json_4xx(pipeline):
    assert pipeline.get("/api/stats")[0] == 401
    status, body = pipeline.get("/api/stats", "flood_control")
    assert (status, body["error"]) == (403, "the leadership view is for the operations centre and the leadership")
    assert pipeline.get("/api/stats/daily", "ws_liyuan")[0] == 403
    status, body = pipeline.get("/api/stats?days=7", "ops_centre")
    assert (status, body["error"]) == (400, "unknown parameter(s): days")
    for bad in ("2026-13-01", "yesterday", "2026-1-1", "2026-12-01T00:00:00%2B08:00"):
        status, body = pipeline.get(f"/api/stats/daily?date={bad}", "ops_centre")
        assert (status, body["error"]) == (400, "date must be a day YYYY-MM-DD, e.g. 2026-12-01"), bad
    future = (datetime.now(CST) + timedelta(days=2)).date().isoformat()
    status, body = pipeline.get(f"/api/stats/daily?date={future}", "ops_centre")
    assert (status, body["error"]) == (400, f"{future} has not begun yet in Asia/Shanghai")
    assert pipeline.get("/api/stats/daily", "ops_centre")[0] == 200
    # The PDF of the report: the same refusals, as JSON.
    assert pipeline.get("/api/stats/daily.pdf")[0] == 401
    assert pipeline.get("/api/stats/daily.pdf", "ws_liyuan")[0] == 403
    status, body = pipeline.get("/api/stats/daily.pdf?lang=fr", "ops_centre")
    assert (status, body["error"]) == (400, "lang must be zh or en")
    status, body = pipeline.get("/api/stats/daily.pdf?date=yesterday", "ops_centre")
    assert (status, body["error"]) == (400, "date must be a day YYYY-MM-DD, e.g. 2026-12-01")
    status, body = pipeline.get(f"/api/stats/daily.pdf?date={future}&lang=en", "ops_centre")
    assert (status, body["error"]) == (400, f"{future} has not begun yet in Asia/Shanghai")
    assert pipeline.request("POST", "/api/stats", "ops_centre", {})[0] == 405


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=60), name=st.sampled_from(["date", "from", "days", "category", "x"]),
       role=st.sampled_from(["ops_centre", "district_leadership", "flood_control", None]))
def test_hostile_queries_to_the_stats_and_map_routes_are_never_a_500(pipeline, text, name, role):
    for path in ("/api/stats/daily", "/api/stats", "/api/map", "/api/hotspots"):
        status, answer = pipeline.get(f"{path}?{quote(name)}={quote(text)}", role)
        assert 400 <= status < 500 or status == 200, (path, status, answer)
        assert isinstance(answer, dict) and (status == 200 or "error" in answer), (path, status, answer)
