"""AccountStore and AuditLog against the machine's Redis: what is kept of a password, a token and a
session, the lockout count, and an audit record written twice (a replay) kept once."""
from __future__ import annotations

import os
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import redis.asyncio as aioredis

from schemas.accounts import Actor, AuditRecord, UserRole
from streams.accounts import AccountStore, AuditLog, SignIn, digest
from tests.support import CONFIG

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

REDIS_URL = os.environ.get("SOC_REDIS_URL", "redis://127.0.0.1:6379/0")
NOW = datetime(2026, 12, 1, 9, 30, tzinfo=timezone.utc)
PASSWORD = "a long enough passphrase"


@pytest.fixture
async def store():
    client = aioredis.from_url(REDIS_URL)
    prefix = f"soc-test-accounts-{uuid.uuid4().hex[:8]}"
    yield AccountStore(client, prefix, CONFIG, lambda: NOW)
    async for key in client.scan_iter(f"{prefix}:*"):
        await client.delete(key)
    await client.aclose()


async def all_values(store: AccountStore) -> bytes:
    """Every key and value under the store's prefix, as one blob to search for secrets."""
    blob = b""
    async for key in store.redis.scan_iter(f"{store.prefix}:*"):
        kind = await store.redis.type(key)
        value = await store.redis.get(key) if kind == b"string" else b" ".join(await store.redis.smembers(key))
        blob += key + b"=" + value + b"\n"
    return blob


async def test_a_password_is_kept_as_argon2id_and_a_token_only_as_its_hash(store):
    user = await store.add("wang", "王芳", "traffic_police", UserRole.clerk, PASSWORD)
    assert user.password_hash.startswith("$argon2id$")
    token = await store.issue_token("wang")
    session = (await store.sign_in("wang", PASSWORD)).session_id
    kept = await all_values(store)
    assert PASSWORD.encode() not in kept and token.encode() not in kept and session.encode() not in kept
    assert digest(token).encode() in kept
    assert (await store.token_user(token)).user_id == "wang"
    assert await store.revoke_tokens("wang") == 1 and await store.token_user(token) is None


async def test_a_session_expires_when_idle_and_each_use_restarts_its_clock(store):
    await store.add("li", "李", "flood_control", UserRole.clerk, PASSWORD)
    result = await store.sign_in("li", PASSWORD)
    key = store.key("session", digest(result.session_id))
    idle = CONFIG.district.sign_in.idle_expiry_s
    assert 0 < await store.redis.ttl(key) <= idle
    await store.redis.expire(key, 5)  # as if it had been idle for all but 5 s
    assert (await store.session(result.session_id)).user.user_id == "li"
    assert await store.redis.ttl(key) > idle - 5  # used: a full idle period again
    assert await store.alive(result.session_id)
    await store.sign_out(result.session_id)
    assert await store.session(result.session_id) is None and not await store.alive(result.session_id)


async def test_failed_sign_ins_lock_the_account_until_a_reset(store):
    await store.add("zhao", "赵", "city_management", UserRole.clerk, PASSWORD)
    limit = CONFIG.district.sign_in.max_failures
    outcomes = [(await store.sign_in("zhao", "wrong password")).outcome for _ in range(limit)]
    assert outcomes == [SignIn.wrong] * (limit - 1) + [SignIn.locked]
    assert 0 < await store.redis.ttl(store.key("signin-locked", "zhao")) <= CONFIG.district.sign_in.lockout_s
    assert (await store.sign_in("zhao", PASSWORD)).outcome is SignIn.locked  # the right password too
    await store.reset("zhao", "another long passphrase")
    assert (await store.sign_in("zhao", "another long passphrase")).outcome is SignIn.ok
    # A success clears the count: the next wrong one is the first again.
    assert (await store.sign_in("zhao", "wrong")).failures == 1


async def test_an_unknown_user_and_a_wrong_password_look_the_same(store):
    await store.add("sun", "孙", "construction_safety", UserRole.clerk, PASSWORD)
    assert (await store.sign_in("nobody", PASSWORD)).outcome is SignIn.wrong
    assert (await store.sign_in("sun", "not it at all")).outcome is SignIn.wrong
    assert (await store.sign_in("x" * 300, PASSWORD)).outcome is SignIn.wrong


async def test_disabling_ends_sessions_and_tokens_and_is_said_only_with_the_right_password(store):
    await store.add("wu", "吴", "environment", UserRole.clerk, PASSWORD)
    session = (await store.sign_in("wu", PASSWORD)).session_id
    token = await store.issue_token("wu")
    await store.disable("wu")
    assert await store.session(session) is None and await store.token_user(token) is None
    assert (await store.sign_in("wu", "not the password")).outcome is SignIn.wrong
    assert (await store.sign_in("wu", PASSWORD)).outcome is SignIn.disabled
    await store.enable("wu")
    assert (await store.sign_in("wu", PASSWORD)).outcome is SignIn.ok


async def test_an_audit_record_written_again_is_kept_once_and_pages_newest_first(store):
    log = AuditLog(store.redis, store.prefix)
    actor = Actor(user_id="duty", name="张值班", department="ops_centre", role=UserRole.duty_officer)
    records = [AuditRecord(audit_id=f"a{i}", at=NOW + timedelta(seconds=i), kind="action", actor=actor,
                           user_id="duty", what=what, target="T1") for i, what in
               enumerate(["ticket.accept", "ticket.verify", "silence.create"])]
    raws = [(r.model_dump_json().encode(), r.at) for r in records]
    await log.record(raws)
    await log.record(raws[1:])  # a replay of the last two
    assert [r.audit_id for r in await log.page(0, 10)] == ["a2", "a1", "a0"]
    assert [r.audit_id for r in await log.page(0, 10, what="ticket")] == ["a1", "a0"]
    assert [r.audit_id for r in await log.page(0, 10, what="ticket.verify")] == ["a1"]
    assert await log.page(0, 10, user_id="someone") == []
