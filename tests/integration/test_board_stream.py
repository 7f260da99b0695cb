"""The board's event stream against a running worker: it stays open on a quiet board, a bad
Last-Event-ID starts over from a snapshot, a good one resumes after it, one person's streams are
capped and a closed board's slot is free at once. (Hundreds of streams at once:
test_board_crowd.py.)"""
from __future__ import annotations

import http.client
import json
import time
from urllib.parse import urlsplit

import pytest

from schemas.accounts import UserRole
from streams.http.board import KEEPALIVE_S
from tests.support import poll

pytestmark = pytest.mark.integration


def open_stream(pipeline, token: str, last_event_id: str | None = None) -> http.client.HTTPResponse:
    """A stream once the worker takes it: a board closed a moment ago (another test's) holds its
    place until the worker's next write to it fails."""
    where = urlsplit(pipeline.worker.url)
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}

    def opened() -> http.client.HTTPResponse | None:
        connection = http.client.HTTPConnection(where.hostname, where.port, timeout=KEEPALIVE_S + 10)
        connection.request("GET", f"/api/alerts/stream?token={token}", headers=headers)
        response = connection.getresponse()
        if response.status == 429:
            connection.close()
            return None
        assert response.status == 200, response.read()
        return response

    return poll(opened, 3 * KEEPALIVE_S, "the worker to take a board stream", 0.5)


def next_event(response: http.client.HTTPResponse) -> list[str]:
    """The lines of the next SSE block (an event or a comment)."""
    lines = []
    while True:
        line = response.readline().decode().rstrip("\n")
        if not line and lines:
            return lines
        if line:
            lines.append(line)


def test_a_quiet_board_gets_keepalives_and_stays_open(pipeline):
    # The wall's view of the centre: nothing may happen on it for a long while.
    response = open_stream(pipeline, pipeline.tokens["ops_centre"])
    try:
        first = next_event(response)
        assert "event: snapshot" in first
        # Past the Redis client's 5 s socket timeout, which once ended quiet streams: a comment comes, every
        # KEEPALIVE_S whatever else the stream carries (the session's timers escalate other tests' tickets).
        deadline, blocks = time.monotonic() + 2 * KEEPALIVE_S + 10, []
        while time.monotonic() < deadline and [": keepalive"] not in blocks:
            blocks.append(next_event(response))
        assert [": keepalive"] in blocks, blocks[-5:]
    finally:
        response.close()


@pytest.mark.parametrize("last_event_id", ["not-an-id", "99999999999999999999-0x", "-", "0-0\u00e9"])
def test_a_last_event_id_that_is_no_stream_id_starts_over_with_a_snapshot(pipeline, last_event_id):
    response = open_stream(pipeline, pipeline.tokens["ops_centre"], last_event_id.encode("utf-8").decode("latin-1"))
    try:
        assert "event: snapshot" in next_event(response)
    finally:
        response.close()


def ask_for_stream(pipeline, token: str) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    where = urlsplit(pipeline.worker.url)
    connection = http.client.HTTPConnection(where.hostname, where.port, timeout=KEEPALIVE_S + 10)
    connection.request("GET", f"/api/alerts/stream?token={token}")
    return connection, connection.getresponse()


def test_a_stream_resumes_after_its_last_event_id_with_what_came_since(pipeline, build, unique):
    clerk = pipeline.add_user(f"resume-{unique}", "traffic_police", UserRole.clerk)
    token = pipeline.user_token(clerk)
    # A board with something on it already (an empty one's snapshot has no entry to resume after).
    before = build.traffic()
    pipeline.send("soc.raw.traffic", before)
    poll(lambda: pipeline.tickets_where(lambda t: t.source_ref == before["event_id"]), 30, "a first ticket")
    response = open_stream(pipeline, token)
    try:
        snapshot = next_event(response)
    finally:
        response.close()
    last_id = next(line for line in snapshot if line.startswith("id: "))[4:]
    event = build.traffic()
    pipeline.send("soc.raw.traffic", event)
    ticket = poll(lambda: pipeline.tickets_where(lambda t: t.source_ref == event["event_id"]), 30,
                  "the ticket of an accident sent while the board was closed")[0]
    response = open_stream(pipeline, token, last_id)
    try:
        first = next_event(response)
        assert "event: ticket" in first, first
        data = json.loads(next(line for line in first if line.startswith("data: "))[6:])
        seen = data["ticket"]["ticket_id"]
        # Tickets of other tests may come first: read on to this one.
        while seen != ticket.ticket_id:
            block = next_event(response)
            assert "event: snapshot" not in block
            if "event: ticket" in block:
                seen = json.loads(next(line for line in block if line.startswith("data: "))[6:])["ticket"]["ticket_id"]
    finally:
        response.close()


def test_one_person_past_their_streams_is_refused_and_a_closed_board_frees_its_slot_at_once(pipeline, unique):
    limit = pipeline.config.district.board_streams.per_person
    clerk = pipeline.add_user(f"tabs-{unique}", "city_management", UserRole.clerk)
    # Sessions and tokens of one person count together.
    tokens = [pipeline.user_token(clerk) for _ in range(2)]
    streams = [open_stream(pipeline, tokens[i % 2]) for i in range(limit)]
    try:
        connection, refused = ask_for_stream(pipeline, tokens[0])
        body = json.loads(refused.read())
        connection.close()
        assert refused.status == 429 and refused.getheader("Retry-After") == "10"
        assert body["error"].startswith(f"您已打开 {limit} 个看板"), body
        streams.pop().close()

        def taken() -> http.client.HTTPResponse | None:
            connection, response = ask_for_stream(pipeline, tokens[1])
            if response.status == 200:
                return response
            assert response.status == 429, response.read()
            connection.close()
            return None

        # Well inside one keepalive: the slot goes with the connection, not at the next write.
        streams.append(poll(taken, KEEPALIVE_S / 3, "the closed board's slot to come free", 0.1))
        assert "event: snapshot" in next_event(streams[-1])
    finally:
        for response in streams:
            response.close()


def test_a_revoked_token_and_a_signed_out_session_end_their_streams_at_the_next_keepalive(pipeline, unique):
    clerk = pipeline.add_user(f"gone-{unique}", "flood_control", UserRole.clerk)
    token = pipeline.user_token(clerk)
    by_token = open_stream(pipeline, token)
    session = pipeline.sign_in(clerk)
    where = urlsplit(pipeline.worker.url)
    connection = http.client.HTTPConnection(where.hostname, where.port, timeout=KEEPALIVE_S + 10)
    connection.request("GET", "/api/alerts/stream", headers={"Cookie": session["Cookie"]})
    by_session = connection.getresponse()
    try:
        assert by_session.status == 200
        for response in (by_token, by_session):
            assert "event: snapshot" in next_event(response)
        pipeline.accounts(lambda store: store.revoke_tokens(clerk))
        pipeline.accounts(lambda store: store.sign_out_everywhere(clerk))
        deadline = time.monotonic() + 2 * KEEPALIVE_S
        for response in (by_token, by_session):
            # The stream ends (end of body) where another keepalive would have come.
            while response.readline():
                assert time.monotonic() < deadline, "a stream still open two keepalives after its sign-in ended"
    finally:
        by_token.close()
        by_session.close()
