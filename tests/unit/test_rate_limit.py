"""The API's rate limiter: keyed on the token itself, whatever the header's spelling, and bounded in memory."""
from __future__ import annotations

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
