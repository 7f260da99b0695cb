"""The board's event stream against a running worker: it stays open on a quiet board, a bad
Last-Event-ID starts over from a snapshot, and streams held open to the cap leave the pipeline's
own Redis writes alone."""
from __future__ import annotations

import http.client
from urllib.parse import urlsplit

import pytest

from streams.http.board import KEEPALIVE_S, MAX_STREAMS, MAX_STREAMS_PER_CALLER
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
        # Past the Redis client's 5 s socket timeout, which once ended quiet streams: a comment comes.
        blocks = [next_event(response) for _ in range(3)]
        assert any(block == [": keepalive"] for block in blocks), blocks
    finally:
        response.close()


@pytest.mark.parametrize("last_event_id", ["not-an-id", "99999999999999999999-0x", "-", "0-0\u00e9"])
def test_a_last_event_id_that_is_no_stream_id_starts_over_with_a_snapshot(pipeline, last_event_id):
    response = open_stream(pipeline, pipeline.tokens["ops_centre"], last_event_id.encode("utf-8").decode("latin-1"))
    try:
        assert "event: snapshot" in next_event(response)
    finally:
        response.close()


def test_streams_held_open_to_the_cap_leave_ticket_writes_and_readiness_alone(pipeline, build):
    departments = sorted(pipeline.tokens)[: -(-MAX_STREAMS // MAX_STREAMS_PER_CALLER)]
    streams = []
    try:
        for department in departments:
            for _ in range(MAX_STREAMS_PER_CALLER):
                if len(streams) < MAX_STREAMS:
                    streams.append(open_stream(pipeline, pipeline.tokens[department]))
        assert len(streams) == MAX_STREAMS
        event = build.traffic()
        pipeline.send("soc.raw.traffic", event)
        poll(lambda: pipeline.tickets_where(lambda t: t.source_ref == event["event_id"]), 30,
             "a ticket written while every board stream is open")
        assert pipeline.get("/readyz")[0] == 200
    finally:
        for response in streams:
            response.close()
