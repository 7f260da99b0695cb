"""The review (复盘) API on its own stack (a response level changes every other test's tickets): the centre
raises level III then II for floods (the flood plan starts), a red traffic accident and a hotline case come in,
the case is accepted, the level is stood down; the level period's review lists the warnings-to-stand-down
timeline with who and why, its measures are /api/performance's figures for the same period, the traffic
police's notification (its robot unreachable) counts as failed; departments and bad parameters are refused
with JSON. A duty officer of the centre writes the findings and actions (a version at a time, each kept and
audited); the centre's service credential, a department's clerk and service credential and the leadership are
refused."""
from __future__ import annotations

import io
import urllib.request
from datetime import datetime, timedelta, timezone
from urllib.parse import quote

import pypdf
import pytest

from tests.integration.payloads import Builder
from tests.integration.test_notify_pipeline import Receivers, notifying_pipeline
from tests.support import CONFIG, DUTY_OFFICER, poll

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def receivers():
    running = Receivers()
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, receivers):
    with notifying_pipeline(tmp_path_factory.mktemp("reviews-stack"), receivers) as running:
        yield running


def set_level(stack, level: str, reason: str, **fields) -> None:
    """The centre's decision, once the worker's table has it (the next decision is written on top of it)."""
    status, body = stack.post("/api/response", "ops_centre", {"level": level, "reason": reason, **fields})
    assert status == 201, body
    poll(lambda: any(c["reason"] == reason for c in stack.get("/api/response", "district_leadership")[1]["history"]),
         10, f"the level decision {reason!r} in force")


def without_names(rows: list[dict]) -> dict:
    return {r["department"]: {k: v for k, v in r.items() if k not in ("name", "name_en")} for r in rows}


@pytest.fixture(scope="module")
def storm(stack):
    """The scripted storm, once the flood plan runs, the accident's notification was given up and the level
    is stood down: (the level period, the accident's ticket, the hotline case's ticket)."""
    build = Builder(CONFIG, "reviews")
    set_level(stack, "III", "暴雨橙色预警，区防指启动Ⅲ级")
    set_level(stack, "II", "积水点增多，提升为Ⅱ级", hazard="flood")
    poll(lambda: stack.get("/api/plan-runs?active=true", "ops_centre")[1]["items"], 15, "the flood II run")
    # Read a minute ago: the times from the reading are the stack's own.
    read = (datetime.now(timezone.utc) - timedelta(minutes=1)).isoformat()
    accident, case = build.traffic(road="望海路", injuries=3, observed_at=read), build.city(reported_at=read)
    stack.send("soc.raw.traffic", accident)
    stack.send("soc.raw.city", case)
    red = poll(lambda: stack.tickets_where(lambda t: t.source_ref == accident["event_id"]), 30, "the accident")[0]
    hotline = poll(lambda: stack.tickets_where(lambda t: t.source_ref == case["case_no"]), 30, "the case")[0]
    assert stack.post(f"/api/tickets/{hotline.ticket_id}/accept", hotline.department, {})[0] == 200

    def given_up():
        # The leadership's own request budget, a few rows a call: the centre's is for the level's stand-down.
        status, body = stack.get(f"/api/notifications?ticket_id={red.ticket_id}&limit=20", "district_leadership")
        return status == 200 and any(e["result"] == "dead" and e["channel"] == "traffic_police"
                                     for e in body["entries"])

    poll(given_up, 30, "the traffic police's notification given up (its robot is unreachable)")
    set_level(stack, "none", "雨停，解除应急响应")

    def stood_down():
        status, periods = stack.get("/api/reviews/levels", "district_leadership")
        assert status == 200, periods
        return len(periods["periods"]) == 1 and not periods["periods"][0]["ongoing"] and periods["periods"][0]

    return poll(stood_down, 15, "the level period ended by the stand-down"), red, hotline


def test_the_review_of_the_level_period(stack, storm):
    period, red, hotline = storm
    assert period["highest"] == "II" and not period["ongoing"] and period["to"] is not None
    status, found = stack.get(f"/api/reviews/level/{period['change_id']}", "district_leadership")
    assert status == 200, found
    assert found["level_period"] == period and (found["from"], found["to"]) == (period["from"], period["to"])
    kinds = [line["kind"] for line in found["timeline"]]
    levels = [line for line in found["timeline"] if line["kind"] == "level"]
    assert [line["level"] for line in levels] == ["III", "II", None]
    assert "决定：暴雨橙色预警，区防指启动Ⅲ级" in levels[0]["text"] and levels[2]["text"].endswith("雨停，解除应急响应）")
    assert "decided by" in levels[1]["text_en"]
    plan = next(line for line in found["timeline"] if line["kind"] == "plan_started")
    assert plan["plan_id"] == "flood_ii" and plan["progress"]["total"] >= 3
    assert any(line["kind"] == "red_opened" and line["ticket_id"] == red.ticket_id for line in found["timeline"])
    first = {line["category"]: line["ticket_id"] for line in found["timeline"] if line["kind"] == "first_of_category"}
    assert first["traffic_accident"] == red.ticket_id and first[hotline.category.value] == hotline.ticket_id
    assert kinds.index("level") < kinds.index("plan_started") < kinds.index("red_opened")
    district = found["measures"]["district"]
    # The accident, the case, the flood plan's tasks and the accident's own plan's tasks.
    assert district["dispatched"] >= 2 + plan["progress"]["total"]
    assert district["times"]["to_accept"]["count"] >= 1
    notifications = found["notifications"]
    assert notifications["failed"] >= 1 and notifications["given_up"] >= 1 and notifications["delivered"] >= 1
    assert notifications["by_channel"]["traffic_police"]["given_up"] >= 1
    late = notifications["lateness"]
    assert late["delivered"] == notifications["delivered"] and 0 <= late["median_s"] <= late["max_s"]
    assert sum(row["deliveries"] for row in notifications["by_channel_type"].values()) == notifications["deliveries"]
    assert "13800138000" not in str(found)


def test_the_measures_are_the_performance_figures_of_the_same_period(stack, storm):
    period, _, _ = storm
    span = f"from={quote(period['from'])}&to={quote(period['to'])}"

    def same():
        _, found = stack.get(f"/api/reviews?{span}", "ops_centre")
        _, performance = stack.get(f"/api/performance?{span}", "ops_centre")
        # A deadline passing between the two calls changes the due counts: try again then.
        return without_names(found["measures"]["departments"]) == without_names(performance["departments"]) and found

    found = poll(same, 20, "the review's department rows equal to /api/performance's")
    rows = found["measures"]["departments"]
    assert sum(r["dispatched"] for r in rows) == found["measures"]["district"]["dispatched"]
    assert sum(r["dispatched"] for r in found["measures"]["severities"]) == found["measures"]["district"]["dispatched"]
    assert all(r["name"] and r["name"] != r["department"] for r in rows)


@pytest.mark.parametrize("path, who, status, error", [
    ("/api/reviews?from=2026-12-01T00:00:00%2B08:00&to=2026-12-02T00:00:00%2B08:00", "city_management", 403,
     "the leadership view is for the operations centre and the leadership"),
    ("/api/reviews/levels", "flood_control", 403, "the leadership view is for the operations centre and the leadership"),
    ("/api/reviews?from=2026-12-01T00:00:00%2B08:00", "ops_centre", 400,
     "from and to are required, RFC 3339 times such as 2026-12-08T14:00:00+08:00"),
    ("/api/reviews?from=2026-12-02T00:00:00%2B08:00&to=2026-12-01T00:00:00%2B08:00", "ops_centre", 400,
     "to must be after from"),
    ("/api/reviews?from=2026-10-01T00:00:00%2B08:00&to=2026-12-01T00:00:00%2B08:00", "ops_centre", 400,
     "a review covers at most 31 days"),
    ("/api/reviews?from=yesterday&to=2026-12-01T00:00:00%2B08:00", "ops_centre", 400, None),
    ("/api/reviews?from=2026-12-01T00:00:00%2B08:00&to=2026-12-02T00:00:00%2B08:00&dept=x", "ops_centre", 400,
     "unknown parameter(s): dept"),
    ("/api/reviews/level/20200101T000000Z", "ops_centre", 404, None),
])
def test_reviews_refuse_departments_and_bad_parameters_with_json(stack, path, who, status, error):
    got, answer = stack.get(path, who)
    assert got == status and isinstance(answer.get("error"), str), answer
    if error:
        assert answer["error"] == error


def test_a_review_of_the_future_is_refused(stack):
    year = datetime.now().year + 1
    got, answer = stack.get(f"/api/reviews?from={year}-01-01T00:00:00%2B08:00&to={year}-01-02T00:00:00%2B08:00",
                            "ops_centre")
    assert (got, answer["error"]) == (400, "from is in the future")


def test_a_silence_in_force_is_in_the_review_with_its_matchers_in_words(stack):
    now = datetime.now(timezone.utc)
    spec = {"matchers": [{"name": "source", "value": "construction"}, {"name": "community", "value": "wanghai"}],
            "comment": "工地监测设备夜间检修", "starts_at": now.isoformat(), "ends_at": (now + timedelta(hours=1)).isoformat()}
    status, made = stack.post("/api/silences", "ops_centre", spec)
    assert status == 201, made
    span = f"from={quote((now - timedelta(hours=1)).isoformat())}&to={quote((now + timedelta(hours=2)).isoformat())}"

    def listed():
        status, found = stack.get(f"/api/reviews?{span}", "district_leadership")
        assert status == 200, found
        return [s for s in found["silences"] if s["silence_id"] == made["silence_id"]]

    [line] = poll(listed, 15, "the silence in the review")
    assert (line["comment"], line["ticket_count"], line["muted"]) == ("工地监测设备夜间检修", 0, 0)
    assert "条件：来源=建设工地，社区=望海社区；原因：工地监测设备夜间检修。" in line["text"]
    assert "matching Source=Construction, Community=Wanghai" in line["text_en"]


def test_a_compound_incident_is_in_the_review_cause_to_effect(stack):
    began = datetime.now(timezone.utc) - timedelta(minutes=1)
    build = Builder(CONFIG, "reviewscompound")
    lat, lon = build.point("liyuan", north_room=0.002)
    station = f"JS-{build.unique}"
    stack.send("soc.raw.traffic", {"event_id": build.next_id("SC"), "type": "congestion", "road": "荔园路",
                                   "lat": lat + 0.0018, "lon": lon, "observed_at": build.at(), "speed_kmh": 35.0})
    stack.send("soc.raw.flood", build.flood(station_id=station, kind="waterlogging", value=20, lat=lat, lon=lon,
                                            warning_level=None, danger_level=None))
    span = f"from={quote(began.isoformat())}&to={quote((began + timedelta(hours=1)).isoformat())}"

    def grouped():
        [flood] = stack.tickets_where(lambda t: t.source_ref.startswith(station)) or [None]
        if flood is None:
            return None
        status, found = stack.get(f"/api/reviews?{span}", "ops_centre")
        assert status == 200, found
        return flood, [g for g in found["compound"] if any(c["ticket_id"] == flood.ticket_id for c in g["causes"])]

    flood, [group] = poll(lambda: (lambda got: got if got and got[1] else None)(grouped()), 60,
                          "the waterlogging and its jam as one compound incident")
    [jam] = group["effects"]
    assert group["rule"] == "积水致拥堵" and jam["department"] == "traffic_police"
    assert group["text"].startswith(f"积水致拥堵：{flood.ticket_id} ") and f" → {jam['ticket_id']} " in group["text"]


FINDINGS = [
    {"finding": "沙河下穿积水，交警签收超时45分钟（值守电话13912345678）", "action": "汛前加装水位报警，交警列入值守名单",
     "owner": "traffic_police", "due": "2027-03-31"},
    {"finding": "暴雨橙色预警后10分钟才启动Ⅲ级响应", "action": "预警即启动", "owner": "flood_control",
     "due": "2027-01-15", "done": True},
]


def put_findings(stack, review_id: str, body: dict, department: str | None = None, token: str | None = None):
    return stack.request("PUT", f"/api/reviews/{review_id}/findings", department, body, token=token)


def test_the_centre_writes_findings_and_actions_others_are_refused(stack, storm):
    period, _, _ = storm
    review_id = f"level-{period['change_id']}"
    status, empty = stack.get(f"/api/reviews/{review_id}/findings", "district_leadership")
    assert status == 200 and (empty["version"], empty["findings"], empty["versions"]) == (0, [], []), empty

    status, written = put_findings(stack, review_id, {"version": 0, "findings": FINDINGS}, DUTY_OFFICER)
    assert status == 200, written
    assert (written["version"], written["by"]) == (1, "测试值班员")
    first = written["findings"][0]
    assert "13912345678" not in first["finding"] and first["owner_name"] == "交警大队海湾中队"
    assert (first["due"], first["done"], written["findings"][1]["done"]) == ("2027-03-31", False, True)
    # Written on a version that is no longer in force: refused, with the one that is.
    status, stale = put_findings(stack, review_id, {"version": 0, "findings": FINDINGS[:1]}, DUTY_OFFICER)
    assert (status, stale["version"]) == (409, 1), stale
    status, second = put_findings(stack, review_id, {"version": 1, "findings": FINDINGS[1:]}, DUTY_OFFICER)
    assert (status, second["version"], len(second["findings"])) == (200, 2, 1), second

    clerk = stack.user_token(stack.add_user("reviews.clerk", "city_management", "clerk", name="城管文员"))
    refused = "a review's findings and actions are written by a duty officer of the centre"
    for who, token in (("ops_centre", None), ("city_management", None), ("district_leadership", None), (None, clerk)):
        status, body = put_findings(stack, review_id, {"version": 2, "findings": FINDINGS}, who, token=token)
        assert (status, body.get("error")) == (403, refused), (who, body)
    status, bad = put_findings(stack, review_id, {"version": 2, "findings": [{**FINDINGS[0], "owner": "nobody"}]},
                               DUTY_OFFICER)
    assert (status, bad["error"]) == (400, "findings.0.owner: unknown department 'nobody'")
    status, bad = put_findings(stack, review_id, {"version": 2, "findings": [{"finding": "x"}]}, DUTY_OFFICER)
    assert status == 422 and bad["error"] == "invalid body"
    status, missing = put_findings(stack, "level-20200101T000000Z", {"version": 0, "findings": []}, DUTY_OFFICER)
    assert status == 404 and missing["error"].startswith("no review level-20200101T000000Z")

    status, found = stack.get(f"/api/reviews/{review_id}/findings", "ops_centre")
    assert status == 200 and [v["version"] for v in found["versions"]] == [2, 1]
    assert [v["findings"] for v in found["versions"]] == [1, 2] and found["versions"][0]["by"] == "测试值班员"
    status, reviewed = stack.get(f"/api/reviews/level/{period['change_id']}", "ops_centre")
    assert status == 200 and reviewed["review_id"] == review_id and reviewed["written"]["version"] == 2

    admin = stack.user_token(stack.add_user("reviews.admin", "ops_centre", "admin", name="管理员"))

    def audited():
        status, body = stack.request("GET", "/api/audit?limit=50&what=review.findings", token=admin)
        assert status == 200, body
        outcomes = sorted(r["outcome"] for r in body["records"])
        return outcomes == ["ok", "ok", "refused", "refused", "refused", "refused"] and body["records"]

    records = poll(audited, 15, "two writes and four refusals on the audit trail")
    assert {r["target"] for r in records} == {review_id}
    assert any(r["detail"] == "version 2: 1 findings" for r in records)


def test_a_period_review_has_its_own_findings(stack, storm):
    period, _, _ = storm
    span = f"from={quote(period['from'])}&to={quote(period['to'])}"
    status, found = stack.get(f"/api/reviews?{span}", "ops_centre")
    assert status == 200, found
    assert found["review_id"].startswith("period-") and found["written"]["version"] == 0
    status, written = put_findings(stack, found["review_id"], {"version": 0, "findings": FINDINGS[:1]}, DUTY_OFFICER)
    assert (status, written["version"]) == (200, 1), written
    status, again = stack.get(f"/api/reviews?{span}", "district_leadership")
    assert again["written"]["findings"][0]["action"] == FINDINGS[0]["action"]


def test_the_level_periods_review_as_a_pdf(stack, storm):
    period, red, _ = storm
    status, found = stack.get(f"/api/reviews/level/{period['change_id']}", "ops_centre")
    assert status == 200, found
    for lang, said in (("zh", "text"), ("en", "text_en")):
        request = urllib.request.Request(f"{stack.worker.url}/api/reviews.pdf?change={period['change_id']}&lang={lang}",
                                         headers={"Authorization": f"Bearer {stack.credential('district_leadership')}"})
        with urllib.request.urlopen(request, timeout=60) as answer:
            assert answer.headers["Content-Type"] == "application/pdf"
            suffix = "-en" if lang == "en" else ""
            assert f'filename="review-level-{period["change_id"]}{suffix}.pdf"' in answer.headers["Content-Disposition"]
            pages = [page.extract_text() for page in pypdf.PdfReader(io.BytesIO(answer.read())).pages]
        text = "".join(pages).replace("\n", "")
        assert 1 <= len(pages) <= 3
        levels = [line for line in found["timeline"] if line["kind"] == "level"]
        assert all(line[said].split(" ", 2)[-1][:10] in text for line in levels), text
    for query, error in (("lang=fr&change=x", "lang must be zh or en"),
                         (f"change={period['change_id']}&from=2026-12-01T00:00:00%2B08:00", "give change, or from and to, not both"),
                         ("from=2026-12-01T00:00:00%2B08:00", None)):
        status, body = stack.get(f"/api/reviews.pdf?{query}", "ops_centre")
        assert status == 400 and isinstance(body.get("error"), str), body
        assert error is None or body["error"] == error
    assert stack.get(f"/api/reviews.pdf?change={period['change_id']}", "city_management")[0] == 403
