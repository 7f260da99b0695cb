"""The emergency-response level (应急响应) on the board, in a real headless Chromium against the real stack:
the centre's control sets a level, the banner shows it in the level's colour (the national four-colour
scale), another board sees it from GET /api/response, and "none" stands it down.

The level applies to the whole (shared) stack, so the test stands it down again however it ends.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest
from playwright.sync_api import expect

from tests.support import poll

pytestmark = pytest.mark.integration

CST = timezone(timedelta(hours=8))
COLOURS = {"I": "rgb(229, 57, 53)", "III": "rgb(253, 216, 53)"}  # var(--red), var(--yellow) in app.css


def state(pipeline) -> dict:
    status, body = pipeline.get("/api/response", "ops_centre")
    assert status == 200, body
    return body


def board_time(value: str) -> str:
    return datetime.fromisoformat(value).astimezone(CST).strftime("%Y-%m-%d %H:%M:%S")


def set_level(board, level: str, reason: str) -> None:
    board.select_option("#response-level", level)
    board.fill("#response-reason", reason)
    board.click("#response-form button[type=submit]")


def test_the_centre_sets_a_response_level_shown_in_its_colour_and_none_stands_it_down(pipeline, pages, build):
    assert state(pipeline)["level"] is None, "a response level was left in force by another test"
    board = pages.board()
    form = board.locator("#response-form")
    banner = board.locator("#response-banner")
    expect(form).to_be_visible(timeout=15_000)  # shown once GET /api/response answers
    expect(banner).to_be_hidden()
    try:
        # No reason: the browser keeps the form (the reason is required) and nothing is sent.
        board.select_option("#response-level", "III")
        board.click("#response-form button[type=submit]")
        assert board.locator("#response-reason").evaluate("input => input.validity.valueMissing")
        assert state(pipeline)["level"] is None

        reason = f"台风黄色预警信号生效 {build.unique}"
        set_level(board, "III", reason)
        expect(banner).to_be_visible()
        expect(banner).to_have_attribute("data-level", "III")
        expect(banner).to_have_attribute("data-colour", "yellow")
        expect(banner).to_have_css("background-color", COLOURS["III"])
        expect(board.locator("#error")).to_be_hidden()
        now = poll(lambda: (s := state(pipeline))["level"] == "III" and s, 30, "level III on the worker")
        assert (now["rank"], now["colour"], now["trigger"], now["reason"]) == (2, "yellow", "manual", reason)
        message = banner.locator(".message")
        expect(message).to_have_text(f"III级应急响应 · 自 {board_time(now['since'])} · {reason}")
        expect(board.locator("#response-level")).to_have_value("III")
        expect(board.locator("#response-reason")).to_have_value("")

        # Another officer's board reads it from GET /api/response; in English too.
        other = pages.board(name="王值班")
        other_banner = other.locator("#response-banner")
        expect(other_banner).to_have_attribute("data-level", "III", timeout=15_000)
        expect(other_banner).to_have_css("background-color", COLOURS["III"])
        other.click("#lang")
        expect(other_banner.locator(".message")).to_have_text(
            f"Level III emergency response · since {board_time(now['since'])} · {reason}")
        other.click("#lang")

        # Raised to I: red.
        set_level(board, "I", f"台风红色预警信号 {build.unique}")
        expect(banner).to_have_attribute("data-level", "I")
        expect(banner).to_have_css("background-color", COLOURS["I"])
        expect(banner.locator(".message")).to_have_text(re.compile(r"^I级应急响应 · 自 "))
        poll(lambda: state(pipeline)["level"] == "I", 30, "level I on the worker")
        expect(other_banner).to_have_attribute("data-level", "I", timeout=15_000)  # the board polls every 10 s

        # "none" stands it down: the banner goes on both boards and stays gone.
        set_level(board, "none", f"台风信号解除 {build.unique}")
        expect(banner).to_be_hidden()
        poll(lambda: state(pipeline)["level"] is None, 30, "no level on the worker")
        expect(other_banner).to_be_hidden(timeout=15_000)
        history = state(pipeline)["history"]
        assert [c["level"] for c in history[:3]] == [None, "I", "III"]
        expect(board.locator("#response-level")).to_have_value("none")
        expect(board.locator("#error")).to_be_hidden()
    finally:
        if state(pipeline)["level"] is not None:
            pipeline.post("/api/response", "ops_centre", {"level": "none", "reason": "e2e clean-up"})
