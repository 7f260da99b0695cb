"""`soc worker` without the operations centre's service token, on a broker and Redis of its own: it starts
when the account store holds a duty officer, and exits 78 saying how to add one when it holds nobody who
can act for the centre."""
from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio as aioredis

from schemas.accounts import UserRole
from streams.accounts import AccountStore
from streams.clock import utc_now
from streams.ops.cli import NO_CREDENTIALS_EXIT_CODE
from streams.ops.devstack import Stack, http_ok
from tests.support import CONFIG, TEST_PASSWORD, marker, poll

pytestmark = pytest.mark.integration

CENTRE_TOKEN_ENV = CONFIG.district.departments["ops_centre"].token_env


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[Stack]:
    # Not the session's pipeline: its prefix holds the other tests' people.
    started = Stack.start(tmp_path_factory.mktemp("worker-start"), redis_prefix=f"soc-test-{marker()}",
                          extra_env={CENTRE_TOKEN_ENV: ""})
    try:
        yield started
    finally:
        client = redis.Redis.from_url(started.redis_url)
        for key in client.scan_iter(f"{started.redis_prefix}:*"):
            client.delete(key)
        client.close()
        started.stop()


def add_user(stack: Stack, user_id: str, department: str, role: UserRole) -> None:
    async def add():
        client = aioredis.from_url(stack.redis_url)
        try:
            await AccountStore(client, stack.redis_prefix, CONFIG, utc_now).add(user_id, "值班员", department, role,
                                                                                  TEST_PASSWORD)
        finally:
            await client.aclose()
    asyncio.run(add())


def test_without_anyone_who_can_act_for_the_centre_the_worker_exits_78_and_says_how_to_add_one(stack):
    add_user(stack, "start.clerk", "traffic_police", UserRole.clerk)  # a clerk cannot act for the centre
    process, _ = stack.start_worker(name="worker-nobody")
    assert process.popen.wait(120) == NO_CREDENTIALS_EXIT_CODE
    log = process.log_path.read_text(encoding="utf-8")
    [reason] = [line for line in log.splitlines() if line.startswith("运行中心无人可用")] or [log]
    assert "`soc users add NAME --name 姓名 --department ops_centre --role duty_officer`" in reason, log
    assert f"under {stack.redis_prefix}" in reason and reason.endswith(f"or set {CENTRE_TOKEN_ENV}.")


def test_a_duty_officer_in_redis_is_enough_to_start_without_the_centres_token(stack):
    add_user(stack, "start.duty", "ops_centre", UserRole.duty_officer)
    process, port = stack.start_worker(name="worker-duty")
    try:
        def serving() -> bool:
            exited = process.popen.poll()
            assert exited is None, f"the worker exited with {exited}:\n{process.log_path.read_text(errors='replace')}"
            return http_ok(f"http://127.0.0.1:{port}/healthz")
        poll(serving, 120, "the worker's web server", interval=0.25)
    finally:
        process.stop()
