"""AccountStore and AuditLog against the machine's Redis: what is kept of a password, a token and a
session, the sign-in throttle per account and address (with a clock the test turns), and an audit
record written twice (a replay) kept once."""
from __future__ import annotations

import asyncio
import os
from datetime import datetime, timedelta, timezone

import pytest
import redis.asyncio as aioredis

from schemas.accounts import USER_ID_RULE, Actor, AuditRecord, UserRole
from handlers.sign_in import Throttle
from streams.accounts import AccountStore, AuditLog, SignIn, digest
from tests.support import CONFIG, marker

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

REDIS_URL = os.environ.get("SOC_REDIS_URL", "redis://127.0.0.1:6379/0")
NOW = datetime(2026, 12, 1, 9, 30, tzinfo=timezone.utc)
PASSWORD = "a long enough passphrase"


@pytest.fixture
async def store():
    client = aioredis.from_url(REDIS_URL)
    prefix = f"soc-test-accounts-{marker()}"
    yield AccountStore(client, prefix, CONFIG, lambda: NOW)
    async for key in client.scan_iter(f"{prefix}:*"):
        await client.delete(key)
    await client.aclose()


async def value_of(client: aioredis.Redis, key: bytes) -> bytes:
    kind = await client.type(key)
    if kind == b"string":
        return await client.get(key)
    if kind == b"hash":
        return b" ".join(field + b"=" + value for field, value in (await client.hgetall(key)).items())
    return b" ".join(await client.smembers(key) if kind == b"set" else await client.zrange(key, 0, -1))


async def all_values(store: AccountStore) -> bytes:
    """Every key and value under the store's prefix, as one blob to search for secrets."""
    blob = b""
    async for key in store.redis.scan_iter(f"{store.prefix}:*"):
        blob += key + b"=" + await value_of(store.redis, key) + b"\n"
    return blob


async def test_a_password_is_kept_as_argon2id_and_a_token_only_as_its_hash(store):
    user = await store.add("wang", "王芳", "traffic_police", UserRole.clerk, PASSWORD)
    assert user.password_hash.startswith("$argon2id$")
    token = await store.issue_token("wang")
    session = (await store.sign_in("wang", PASSWORD, OWNER)).session_id
    kept = await all_values(store)
    assert PASSWORD.encode() not in kept and token.encode() not in kept and session.encode() not in kept
    assert digest(token).encode() in kept
    assert (await store.token_user(token)).user_id == "wang"
    assert await store.revoke_tokens("wang") == 1 and await store.token_user(token) is None


async def test_a_session_expires_when_idle_and_each_use_restarts_its_clock(store):
    await store.add("li", "李", "flood_control", UserRole.clerk, PASSWORD)
    result = await store.sign_in("li", PASSWORD, OWNER)
    key = store.key("session", digest(result.session_id))
    idle = CONFIG.district.sign_in.idle_expiry_s
    assert 0 < await store.redis.ttl(key) <= idle
    await store.redis.expire(key, 5)  # as if it had been idle for all but 5 s
    assert (await store.session(result.session_id)).user.user_id == "li"
    assert await store.redis.ttl(key) > idle - 5  # used: a full idle period again
    assert await store.alive(result.session_id)
    await store.sign_out(result.session_id)
    assert await store.session(result.session_id) is None and not await store.alive(result.session_id)


class Clock:
    def __init__(self):
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now

    def turn(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def store_with(store: AccountStore, clock: Clock, **rules) -> AccountStore:
    """The same Redis and prefix, with this clock and these district.yaml sign_in settings."""
    sign_in = CONFIG.district.sign_in.model_copy(update=rules)
    config = CONFIG.model_copy(update={"district": CONFIG.district.model_copy(update={"sign_in": sign_in})})
    return AccountStore(store.redis, store.prefix, config, clock)


GUESSER, OWNER = "198.51.100.7", "10.1.2.3"


async def test_failures_slow_their_address_on_that_account_doubling_and_never_the_owner_elsewhere(store):
    clock = Clock()
    store = store_with(store, clock)
    await store.add("zhao", "赵", "city_management", UserRole.clerk, PASSWORD)
    free = CONFIG.district.sign_in.free_failures
    outcomes = [(await store.sign_in("zhao", f"wrong {i}", GUESSER)).outcome for i in range(free)]
    assert outcomes == [SignIn.wrong] * free
    slowed = await store.sign_in("zhao", PASSWORD, GUESSER)  # the right password is not even checked
    assert (slowed.outcome, slowed.throttle, slowed.retry_after_s) == (SignIn.throttled, Throttle.account_address, 30)
    assert (await store.sign_in("zhao", PASSWORD, OWNER)).outcome is SignIn.ok
    clock.turn(29)
    assert (await store.sign_in("zhao", "wrong again", GUESSER)).retry_after_s == 1
    clock.turn(1)
    assert (await store.sign_in("zhao", "wrong again", GUESSER)).outcome is SignIn.wrong  # checked: 30 s passed
    assert (await store.sign_in("zhao", PASSWORD, GUESSER)).retry_after_s == 60      # and the next wait doubles
    clock.turn(60)
    assert (await store.sign_in("zhao", PASSWORD, GUESSER)).outcome is SignIn.ok
    # A success clears that address's failures: its next mistake is a free one again.
    assert (await store.sign_in("zhao", "a typo", GUESSER)).outcome is SignIn.wrong
    assert (await store.sign_in("zhao", PASSWORD, GUESSER)).outcome is SignIn.ok


async def test_an_unknown_name_is_slowed_like_a_known_one(store):
    store = store_with(store, Clock(), free_failures=2)
    for name in ("nobody", "sun"):
        if name == "sun":
            await store.add("sun", "孙", "construction_safety", UserRole.clerk, PASSWORD)
        answers = [(await store.sign_in(name, "not it at all", GUESSER)).outcome for _ in range(3)]
        assert answers == [SignIn.wrong, SignIn.wrong, SignIn.throttled], name


async def test_past_the_accounts_ceiling_unknown_addresses_wait_and_the_owners_usual_one_does_not(store):
    clock = Clock()
    store = store_with(store, clock, account_ceiling=6)
    await store.add("qian", "钱", "environment", UserRole.clerk, PASSWORD)
    assert (await store.sign_in("qian", PASSWORD, OWNER)).outcome is SignIn.ok  # the owner's usual address
    for address in ("203.0.113.1", "203.0.113.2", "203.0.113.3"):  # a few failures each, none slowed alone
        for _ in range(2):
            assert (await store.sign_in("qian", "guess", address)).outcome is SignIn.wrong
    elsewhere = await store.sign_in("qian", PASSWORD, "203.0.113.99")
    assert (elsewhere.outcome, elsewhere.throttle, elsewhere.retry_after_s) == (SignIn.throttled, Throttle.account, 30)
    assert (await store.sign_in("qian", PASSWORD, OWNER)).outcome is SignIn.ok
    # Known only as long as known_address_for: a month later the owner's address is one like any other.
    clock.turn(CONFIG.district.sign_in.known_address_for_s + 1)
    for address in ("203.0.113.1", "203.0.113.2", "203.0.113.3"):
        for _ in range(2):
            await store.sign_in("qian", "guess", address)
    assert (await store.sign_in("qian", PASSWORD, OWNER)).throttle is Throttle.account


async def test_tries_sent_at_once_from_one_address_are_checked_one_at_a_time(store):
    store = store_with(store, Clock(), free_failures=2)
    await store.add("zhou", "周", "traffic_police", UserRole.clerk, PASSWORD)
    outcomes = await asyncio.gather(*(store.sign_in("zhou", f"guess {i}", GUESSER) for i in range(20)))
    assert sum(o.outcome is SignIn.wrong for o in outcomes) <= 2
    assert all(o.outcome in (SignIn.wrong, SignIn.throttled) for o in outcomes)
    assert (await store.sign_in("zhou", PASSWORD, OWNER)).outcome is SignIn.ok


@pytest.mark.parametrize("user_id", ["Bad Name", "<img src=x onerror=alert(1)>", "x:session:abc", "a" * 33, "a" * 62,
                                     "Wang", "wang ", "1wang", "w"])
async def test_a_user_id_is_matched_whole(store, user_id):
    with pytest.raises(ValueError) as refused:
        await store.add(user_id, "某人", "traffic_police", UserRole.clerk, PASSWORD)
    assert str(refused.value) == USER_ID_RULE
    assert await store.all() == []


async def test_a_thirty_two_character_id_and_a_password_with_spaces_are_kept_as_given(store):
    user_id, password = "w" + "a" * 31, "  spaces at both ends  "
    await store.add(user_id, "王", "traffic_police", UserRole.clerk, password)
    assert (await store.sign_in(user_id, password.strip(), OWNER)).outcome is SignIn.wrong
    assert (await store.sign_in(user_id, password, OWNER)).outcome is SignIn.ok


async def test_an_unknown_user_and_a_wrong_password_look_the_same(store):
    await store.add("sun", "孙", "construction_safety", UserRole.clerk, PASSWORD)
    assert (await store.sign_in("nobody", PASSWORD, OWNER)).outcome is SignIn.wrong
    assert (await store.sign_in("sun", "not it at all", OWNER)).outcome is SignIn.wrong
    assert (await store.sign_in("x" * 300, PASSWORD, OWNER)).outcome is SignIn.wrong


async def test_disabling_ends_sessions_and_tokens_and_is_said_only_with_the_right_password(store):
    await store.add("wu", "吴", "environment", UserRole.clerk, PASSWORD)
    session = (await store.sign_in("wu", PASSWORD, OWNER)).session_id
    token = await store.issue_token("wu")
    await store.disable("wu")
    assert await store.session(session) is None and await store.token_user(token) is None
    assert (await store.sign_in("wu", "not the password", OWNER)).outcome is SignIn.wrong
    assert (await store.sign_in("wu", PASSWORD, OWNER)).outcome is SignIn.disabled
    await store.enable("wu")
    assert (await store.sign_in("wu", PASSWORD, OWNER)).outcome is SignIn.ok


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
