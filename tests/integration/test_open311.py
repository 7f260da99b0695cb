"""Open311 GeoReport v2 through the stack: services in JSON and XML, requests posted form-encoded and as
JSON with a client's api_key, ticketed as mobile_app city reports, their status read back (never the
reporter's data), a retried POST taken once, and bad requests answered in Open311's error form."""
from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import datetime
from xml.etree.ElementTree import fromstring

import pytest

from tests.integration.payloads import Builder
from streams.ops.devstack import soc_command
from tests.support import CONFIG, DUTY_OFFICER, marker, poll, running_pipeline

pytestmark = pytest.mark.integration

APP_KEY = f"test-app-{marker()}"
HOTLINE_KEY = f"test-12345-{marker()}"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with running_pipeline(tmp_path_factory.mktemp("open311"), SOC_OPEN311_KEY_CITIZEN_APP=APP_KEY,
                          SOC_OPEN311_KEY_PLATFORM_12345=HOTLINE_KEY) as running:
        yield running


def call(stack, method: str, path: str, data: bytes | None = None, content_type: str | None = None):
    """(status, Content-Type, body bytes) of a plain request: Open311 clients send no bearer token."""
    headers = {"Content-Type": content_type} if content_type else {}
    request = urllib.request.Request(stack.worker.url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def post_form(stack, fields: dict) -> tuple[int, object]:
    status, _, body = call(stack, "POST", "/open311/v2/requests.json", urllib.parse.urlencode(fields).encode(),
                           "application/x-www-form-urlencoded")
    return status, json.loads(body)


def post_json(stack, fields: dict) -> tuple[int, object]:
    status, _, body = call(stack, "POST", "/open311/v2/requests.json", json.dumps(fields).encode(), "application/json")
    return status, json.loads(body)


def get_json(stack, path: str) -> tuple[int, object]:
    status, _, body = call(stack, "GET", path)
    return status, json.loads(body)


def fields(build: Builder, community: str, **extra) -> dict:
    lat, lon = build.point(community)
    return {"api_key": APP_KEY, "service_code": "road_damage", "lat": f"{lat}", "long": f"{lon}",
            "address_string": f"{build.unique} 路口", "description": f"{build.unique} 路面坑洞，联系 13912345678",
            "phone": "13912345678", "email": "citizen@example.cn", "first_name": "王", **extra}


def test_services_in_json_and_xml(stack):
    status, rows = get_json(stack, "/open311/v2/services.json")
    assert status == 200 and {r["service_code"] for r in rows} >= {"road_damage", "manhole_cover_missing"}
    assert all(r["group"] == "city" and r["metadata"] is False for r in rows)
    status, kind, body = call(stack, "GET", "/open311/v2/services.xml")
    assert status == 200 and kind.startswith("text/xml")
    root = fromstring(body)
    assert root.tag == "services" and [s.findtext("service_code") for s in root] == [r["service_code"] for r in rows]


def test_a_form_request_is_ticketed_and_its_status_read_back_without_the_reporter(stack):
    build = Builder(CONFIG, f"o311-form-{uuid.uuid4().hex[:6]}")
    status, body = post_form(stack, {**fields(build, "wanghai"), "attribute[depth_cm]": "30",
                                     "media_url": "https://img.example.cn/1.jpg"})
    assert status == 201, body
    request_id = body[0]["service_request_id"]
    [ticket] = poll(lambda: stack.tickets_where(lambda t: t.source_ref == request_id), 30, "the ticket")
    assert ticket.category.value == "city_road_damage" and ticket.department == "city_management"
    assert ticket.media_url == "https://img.example.cn/1.jpg"
    city = [json.loads(r.value) for r in stack.read_topic("soc.raw.city")]
    [report] = [r for r in city if r["case_no"] == request_id]
    assert (report["channel"], report["attributes"], report["media_url"]) == (
        "mobile_app", {"depth_cm": "30"}, "https://img.example.cn/1.jpg")

    status, [one] = get_json(stack, f"/open311/v2/requests/{request_id}.json")
    assert status == 200
    assert (one["service_request_id"], one["status"], one["service_code"], one["agency_responsible"]) == (
        request_id, "open", "road_damage", "城管执法队")
    assert datetime.fromisoformat(one["expected_datetime"]) == ticket.resolve_due.replace(microsecond=0)
    assert one["expected_datetime"].endswith("+08:00")
    assert one["status_notes"] == "已派遣至城管执法队"
    text = json.dumps(one, ensure_ascii=False)
    assert not any(v in text for v in ("13912345678", "139****5678", "citizen@example.cn", "王", build.unique))

    # The ticket closed (road damage: with a photo after the work): the request reads closed.
    assert stack.post(f"/api/tickets/{ticket.ticket_id}/accept", "city_management", {})[0] == 200
    stack.upload_after_photo(ticket.ticket_id, "city_management")
    for action, department, payload in (("resolve", "city_management", {"resolution": "已修补"}),
                                        ("verify", DUTY_OFFICER, {"passed": True})):
        assert stack.post(f"/api/tickets/{ticket.ticket_id}/{action}", department, payload)[0] == 200
    status, [closed] = get_json(stack, f"/open311/v2/requests/{request_id}.json")
    assert (closed["status"], closed["status_notes"]) == ("closed", "已核查结案")


def test_a_json_request_with_the_hotline_key_is_a_hotline_case_and_a_retry_is_taken_once(stack):
    build = Builder(CONFIG, f"o311-json-{uuid.uuid4().hex[:6]}")
    request = {**fields(build, "yugang", api_key=HOTLINE_KEY, service_code="manhole_cover_missing"),
               "attribute": {"size": "large"}}
    status, body = post_json(stack, request)
    assert status == 201, body
    request_id = body[0]["service_request_id"]
    status, again = post_json(stack, request)
    assert status == 200 and again[0]["service_request_id"] == request_id
    [ticket] = poll(lambda: stack.tickets_where(lambda t: t.source_ref == request_id), 30, "the ticket")
    assert ticket.occurrences == 1 and ticket.category.value == "city_manhole"
    city = [json.loads(r.value) for r in stack.read_topic("soc.raw.city")]
    assert [r["channel"] for r in city if r["case_no"] == request_id] == ["hotline_12345"]


def test_the_request_list_filters_by_time_status_and_service(stack):
    build = Builder(CONFIG, f"o311-list-{uuid.uuid4().hex[:6]}")
    status, body = post_form(stack, fields(build, "rongshu", service_code="garbage_overflow"))
    assert status == 201
    request_id = body[0]["service_request_id"]
    poll(lambda: stack.tickets_where(lambda t: t.source_ref == request_id), 30, "the ticket")
    status, rows = get_json(stack, "/open311/v2/requests.json?service_code=garbage_overflow&status=open")
    assert status == 200 and request_id in [r["service_request_id"] for r in rows]
    assert all(r["service_code"] == "garbage_overflow" and r["status"] == "open" for r in rows)
    status, rows = get_json(stack, "/open311/v2/requests.json?status=closed&service_code=garbage_overflow")
    assert request_id not in [r["service_request_id"] for r in rows]
    past = urllib.parse.quote("2020-01-01T00:00:00+08:00")
    status, rows = get_json(stack, f"/open311/v2/requests.json?start_date={past}&end_date={past.replace('01-01T', '01-02T')}")
    assert (status, rows) == (200, [])


@pytest.mark.parametrize("path, data, kind, code, description", [
    ("/open311/v2/requests.json", {"service_code": "road_damage", "lat": "22.51", "long": "113.93"}, "form",
     403, "api_key missing or unknown"),
    ("/open311/v2/requests.json", {"api_key": "nope", "service_code": "road_damage"}, "json",
     403, "api_key missing or unknown"),
    ("/open311/v2/requests.json", {"api_key": APP_KEY, "service_code": "potholes", "lat": "22.51", "long": "113.93"},
     "form", 404, "service_code 'potholes' not found (GET services.json lists them)"),
    ("/open311/v2/requests.json", {"api_key": APP_KEY, "service_code": "road_damage"}, "json",
     400, "a location is required: lat and long, or address_string"),
    ("/open311/v2/requests.json", b"[1, 2]", "json", 400, "body must be a JSON object"),
    ("/open311/v2/requests.json", b"x" * 20000, "form", 413, "body over 16384 bytes"),
    ("/open311/v2/requests/O311-nope.json", None, "get", 404, "no service request O311-nope"),
    ("/open311/v2/requests.json?status=lost", None, "get", 400, "status must be among closed, open"),
    ("/open311/v2/requests.json?start_date=yesterday", None, "get", 400,
     "start_date must be a W3C date-time, e.g. 2026-12-01T08:30:00+08:00"),
])
def test_bad_requests_get_open311_errors(stack, path, data, kind, code, description):
    if kind == "get":
        status, _, body = call(stack, "GET", path)
    elif isinstance(data, bytes):
        status, _, body = call(stack, "POST", path, data,
                               "application/json" if kind == "json" else "application/x-www-form-urlencoded")
    elif kind == "json":
        status, _, body = call(stack, "POST", path, json.dumps(data).encode(), "application/json")
    else:
        status, _, body = call(stack, "POST", path, urllib.parse.urlencode(data).encode(),
                               "application/x-www-form-urlencoded")
    assert (status, json.loads(body)) == (code, [{"code": code, "description": description}])


def test_soc_rebuild_keeps_the_requests_and_restores_a_lost_one(stack):
    build = Builder(CONFIG, f"o311-rebuild-{uuid.uuid4().hex[:6]}")
    ids = []
    for community in ("liyuan", "guiwan"):
        status, body = post_form(stack, fields(build, community, service_code="damaged_facility"))
        assert status == 201
        ids.append(body[0]["service_request_id"])
    for request_id in ids:
        poll(lambda: stack.tickets_where(lambda t: t.source_ref == request_id), 30, "the ticket")
    stack.redis.delete(stack.key("open311", "req", ids[1]))  # lost (a Redis failover, say)
    assert get_json(stack, f"/open311/v2/requests/{ids[1]}.json")[0] == 404
    rebuilt = subprocess.run([*soc_command(), "rebuild"], env=stack.stack.env(), capture_output=True, text=True,
                             timeout=120)
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    for request_id in ids:
        status, [one] = get_json(stack, f"/open311/v2/requests/{request_id}.json")
        assert (status, one["status"], one["agency_responsible"][-5:]) == (200, "open", "社区工作站"), one
