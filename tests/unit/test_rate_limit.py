"""The API's rate limiter: keyed on the token itself, whatever the header's spelling, and bounded in memory."""
from __future__ import annotations

import pytest
from aiohttp.test_utils import make_mocked_request

from streams.http.api import RateLimiter, caller_of


def caller(header: str | None) -> str:
    return caller_of(make_mocked_request("GET", "/api/tickets", headers={"Authorization": header} if header else {}))


def test_spellings_of_one_token_are_one_caller_and_a_malformed_header_is_the_address():
    assert caller("Bearer abc") == caller("bearer abc") == caller("BEARER   abc ") != caller("Bearer abd")
    assert caller("Bearer tökén").startswith("addr:") and caller(None).startswith("addr:")


def test_three_hundred_requests_with_varied_spellings_are_limited_as_one():
    clock = [0.0]
    limiter = RateLimiter(rate=1.0, burst=10.0, clock=lambda: clock[0])
    spellings = ["Bearer t", "bearer t", "Bearer  t", "BEARER t", "Bearer t "]
    allowed = sum(limiter.allow(caller(spellings[i % len(spellings)])) == 0 for i in range(300))
    assert allowed == 10


def test_the_limiter_forgets_refilled_callers_and_stays_bounded():
    clock = [0.0]
    limiter = RateLimiter(rate=10.0, burst=5.0, clock=lambda: clock[0])
    for n in range(RateLimiter.MAX_CALLERS + 500):
        clock[0] += 0.001
        limiter.allow(f"token:{n}")
    assert len(limiter.buckets) <= RateLimiter.MAX_CALLERS


def test_a_page_of_200_rows_costs_eleven_times_a_single_read():
    clock = [0.0]
    limiter = RateLimiter(rate=20.0, burst=100.0, clock=lambda: clock[0])
    pages = sum(limiter.allow("id:looper", 1 + 200 / 20) == 0 for _ in range(50))
    reads = sum(limiter.allow("id:reader", 1) == 0 for _ in range(150))
    assert (pages, reads) == (9, 100)


def test_a_refused_request_spends_nothing_and_says_how_long_until_it_would_pass():
    clock = [0.0]
    limiter = RateLimiter(rate=20.0, burst=100.0, clock=lambda: clock[0])
    for _ in range(9):
        assert limiter.allow("id:looper", 11) == 0
    assert limiter.allow("id:looper", 11) == pytest.approx((11 - 1) / 20)  # 1 unit left, 10 to come
    assert limiter.allow("id:looper", 1) == 0  # the refusal took nothing: a single read still fits
    clock[0] += 0.55
    assert limiter.allow("id:looper", 11) == 0


def test_peeking_at_an_address_spends_nothing():
    clock = [0.0]
    limiter = RateLimiter(rate=1.0, burst=3.0, clock=lambda: clock[0])
    assert [limiter.wait("addr:a") for _ in range(5)] == [0.0] * 5
    for _ in range(3):
        limiter.allow("addr:a")
    assert limiter.wait("addr:a") == pytest.approx(1.0)
    clock[0] += 1.0
    assert limiter.wait("addr:a") == 0.0
