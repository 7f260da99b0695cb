"""The HTTP side tried as a hostile or merely slow client would, against the running stack: bodies sent in
several TCP writes with pauses between them are read whole (a login, a ticket comment, an Open311 form cut
inside its description, a CAP alert); a chunked body past the limit is a JSON 413; dates at the edges of what
datetime holds are JSON 4xx, not an OverflowError's 500; the audit page keeps its limit; a 9 KB URL or header
is a JSON 400 and one warning line in the worker's log."""
from __future__ import annotations

import asyncio
import json
import re
import urllib.parse
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from schemas.accounts import UserRole
from tests.integration.payloads import Builder
from tests.support import CONFIG, DUTY_OFFICER, marker, poll, running_pipeline

pytestmark = pytest.mark.integration

APP_KEY = f"test-app-{marker()}"
FEED_TOKEN = f"test-cap-{marker()}"
CAP_SAMPLE = Path(__file__).resolve().parents[1] / "data" / "cap" / "typhoon_orange_actual.xml"
# Between the writes of a slow client: long enough that each write reaches the worker on its own.
PAUSE_S = 0.2


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with running_pipeline(tmp_path_factory.mktemp("hostile-http"), SOC_OPEN311_KEY_CITIZEN_APP=APP_KEY,
                          SOC_CAP_TOKEN_SZMB=FEED_TOKEN) as running:
        yield running


def send_slowly(stack, path: str, pieces: list[bytes], headers: dict[str, str]) -> tuple[int, object, str]:
    """POST `pieces` as one body over a raw socket, one TCP write per piece with a pause between: (status,
    JSON body, response head)."""
    async def run():
        reader, writer = await asyncio.open_connection("127.0.0.1", stack.worker.port)
        head = {"Host": f"127.0.0.1:{stack.worker.port}", "Connection": "close",
                "Content-Length": str(sum(map(len, pieces))), **headers}
        writer.write(f"POST {path} HTTP/1.1\r\n".encode()
                     + b"".join(f"{k}: {v}\r\n".encode() for k, v in head.items()) + b"\r\n")
        await writer.drain()
        for piece in pieces:
            await asyncio.sleep(PAUSE_S)
            writer.write(piece)
            await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 30)
        writer.close()
        return answer
    return parse_response(asyncio.run(run()))


def send_raw(stack, request: bytes) -> tuple[int, object, str]:
    async def run():
        reader, writer = await asyncio.open_connection("127.0.0.1", stack.worker.port)
        writer.write(request)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 30)
        writer.close()
        return answer
    return parse_response(asyncio.run(run()))


def parse_response(answer: bytes) -> tuple[int, object, str]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return status, json.loads(body), head.decode()


def halves(body: bytes, at: bytes) -> list[bytes]:
    """`body` cut right after `at`, and its rest cut again in two: three writes."""
    cut = body.index(at) + len(at)
    middle = cut + (len(body) - cut) // 2
    return [body[:cut], body[cut:middle], body[middle:]]


def json_headers(token: str | None = None) -> dict[str, str]:
    return {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}


# ------------------------------------------------------------------ bodies in pieces

def test_a_sign_in_sent_in_pieces_signs_in(stack):
    user = stack.add_user(f"slow.{uuid.uuid4().hex[:6]}", "flood_control", UserRole.clerk)
    body = json.dumps({"user": user, "password": "correct horse battery staple"}).encode()
    origin = f"http://127.0.0.1:{stack.worker.port}"
    status, answer, head = send_slowly(stack, "/api/login", halves(body, b'"password": "correct'),
                                       {**json_headers(), "Origin": origin, "Sec-Fetch-Site": "same-origin"})
    assert status == 200, answer
    assert answer["csrf"] and "soc_session=" in head


def test_a_comment_sent_in_pieces_is_kept_whole(stack):
    build = Builder(CONFIG, f"slow-{uuid.uuid4().hex[:6]}")
    stack.send("soc.raw.flood", build.flood(value=5.8, warning_level=4.5, danger_level=5.5))
    [ticket] = poll(lambda: [t for t in stack.inbox("flood_control") if t.source_ref.startswith(f"WL-{build.unique}")],
                    30, "the flood ticket")
    note = f"{build.unique} 泵车已到现场，正在排水，预计半小时后水位回落到警戒线以下"
    body = json.dumps({"note": note}, ensure_ascii=False).encode()
    status, answer, _ = send_slowly(stack, f"/api/tickets/{ticket.ticket_id}/comment", halves(body, "泵车".encode()),
                                    json_headers(stack.credential(DUTY_OFFICER)))
    assert status == 200, answer
    assert answer["history"][-1]["note"] == note


def test_an_open311_form_cut_inside_its_description_stores_the_whole_description(stack):
    build = Builder(CONFIG, f"slow-form-{marker()}")
    lat, lon = build.point("wanghai")
    description = f"{build.unique} 路面塌陷约两米见方，积水很深，电动车已经有人摔倒，请尽快派人处理"
    body = urllib.parse.urlencode({"api_key": APP_KEY, "service_code": "road_damage", "lat": lat, "long": lon,
                                   "description": description}).encode()
    pieces = halves(body, urllib.parse.quote("路面塌陷").encode())
    status, answer, _ = send_slowly(stack, "/open311/v2/requests.json", pieces,
                                    {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 201, answer
    request_id = answer[0]["service_request_id"]
    reports = poll(lambda: [r for r in (json.loads(m.value) for m in stack.read_topic("soc.raw.city"))
                            if r["case_no"] == request_id], 30, "the city report")
    assert [r["description"] for r in reports] == [description]


def test_a_cap_alert_sent_in_pieces_is_taken(stack):
    sent = datetime.now(timezone.utc).replace(microsecond=0)
    text = CAP_SAMPLE.read_text(encoding="utf-8").replace("44030041600000_20261201100000",
                                                          f"slow_{marker()}")
    text = re.sub(r"<sent>[^<]+</sent>", f"<sent>{sent.isoformat()}</sent>", text)
    text = re.sub(r"<effective>[^<]+</effective>", "", text)
    text = re.sub(r"<expires>[^<]+</expires>", f"<expires>{(sent + timedelta(hours=1)).isoformat()}</expires>", text)
    status, answer, _ = send_slowly(stack, "/api/ingest/cap", halves(text.encode(), "<headline>".encode()),
                                    {"Content-Type": "application/xml", "Authorization": f"Bearer {FEED_TOKEN}"})
    assert status == 201, answer
    assert (answer["kind"], answer["severity"], answer["acted"]) == ("typhoon", "orange", True)


def test_a_chunked_body_past_the_limit_is_a_json_413(stack):
    chunk = b"x" * 4096
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(5)) + b"0\r\n\r\n"
    request = (f"POST /api/login HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
               f"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n").encode() + chunked
    status, answer, _ = send_raw(stack, request)
    assert (status, answer) == (413, {"error": "body over 16384 bytes"})


# ------------------------------------------------------------------ dates at the edges, pages, long lines

@pytest.mark.parametrize("path, who, error", [
    ("/api/duty?from=0001-01-01T00:00:00%2B14:00", "ops_centre", "from must be a time between the years 2000 and 2100"),
    ("/api/duty?from=9999-12-31T00:00:00-14:00", "ops_centre", "from must be a time between the years 2000 and 2100"),
    ("/api/stats/daily?date=9999-12-31", "ops_centre", "date must be a day between the years 2000 and 2100"),
    ("/api/stats/daily?date=0001-01-01", "district_leadership", "date must be a day between the years 2000 and 2100"),
    ("/api/performance?to=9999-12-31T23:59:59-14:00", "ops_centre", "to must be a time between the years 2000 and 2100"),
    ("/api/silenced?since=0001-01-01T00:00:00%2B14:00", "ops_centre",
     "since must be a time between the years 2000 and 2100"),
])
def test_times_at_the_edges_of_the_calendar_are_a_json_400(stack, path, who, error):
    assert stack.get(path, who) == (400, {"error": error})


def test_an_open311_end_date_in_the_year_1_is_an_open311_400(stack):
    status, answer, _ = send_raw(stack, b"GET /open311/v2/requests.json?end_date=0001-01-05T00:00:00Z HTTP/1.1\r\n"
                                        b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n")
    assert (status, answer) == (400, [{"code": 400,
                                       "description": "end_date must be a time between the years 2000 and 2100"}])


def test_the_audit_page_takes_a_limit_from_1_to_500(stack):
    admin = stack.user_token(stack.add_user(f"admin.{uuid.uuid4().hex[:6]}", "ops_centre", UserRole.admin))
    for limit in ("0", "501", "-1"):
        assert stack.get(f"/api/audit?limit={limit}", token=admin) == (
            400, {"error": "limit must be an integer from 1 to 500"})
    status, page = stack.get("/api/audit?limit=1", token=admin)
    assert status == 200 and len(page["records"]) == 1


def worker_log_lines(stack) -> list[str]:
    return stack.worker.process.log_path.read_text(errors="replace").splitlines()


@pytest.mark.parametrize("what", ["url", "header"])
def test_a_9_kb_url_or_header_is_a_json_400_and_one_warning_line(stack, what):
    marker = uuid.uuid4().hex
    long = marker + "a" * 9 * 1024
    line = f"GET /api/tickets?q={long} HTTP/1.1" if what == "url" else "GET /api/tickets HTTP/1.1"
    header = "" if what == "url" else f"X-Filler: {long}\r\n"
    before = len(worker_log_lines(stack))
    status, answer, _ = send_raw(stack, f"{line}\r\nHost: 127.0.0.1\r\n{header}Connection: close\r\n\r\n".encode())
    assert (status, answer) == (400, {"error": "bad request"})
    logged = poll(lambda: [ln for ln in worker_log_lines(stack)[before:] if "malformed request refused" in ln], 10,
                  "the warning line")
    assert len(logged) == 1 and "WARNING" in logged[0].upper()
    after = worker_log_lines(stack)[before:]
    assert not any("Traceback" in ln or "Error handling request" in ln or marker in ln for ln in after)
