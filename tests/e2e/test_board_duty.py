"""The board's header shows who is on duty, from /api/duty/now, in both languages."""
from __future__ import annotations

import pytest

from tests.support import poll

pytestmark = pytest.mark.integration


def header(pipeline, leader_label: str, officer_label: str) -> str:
    status, body = pipeline.get("/api/duty/now", "ops_centre")
    assert status == 200, body
    name = lambda who: who["name"] if who else "—"  # noqa: E731
    return f"{leader_label} {name(body['leader'])} · {officer_label} {name(body['officer'])}"


def test_the_board_header_names_the_leader_and_the_officer_on_duty(pipeline, pages):
    board = pages.board()
    duty = board.locator("#duty")
    # Asked again on each look: a shift may change between the page's request and the test's.
    poll(lambda: duty.is_visible() and duty.text_content() == header(pipeline, "带班领导", "值班员"), 15, "the duty line")
    board.click("#lang")
    poll(lambda: duty.text_content() == header(pipeline, "Leader", "Officer"), 15, "the duty line in English")
    board.click("#lang")
    board.click("#signout")
    assert duty.is_hidden()
