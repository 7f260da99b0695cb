"""Accounts in Redis: users with argon2id password hashes, their API tokens (SHA-256 only), page
sessions with idle expiry, and the failed sign-ins that slow down guessing (handlers/sign_in.py).

Keys (under the store's prefix):
  user:<id>             the User JSON                      users             the set of user ids
  token:<sha256>        the user id an API token names     user-tokens:<id>  that user's token hashes
  session:<sha256>      {"user_id", "csrf"}, expiring idle  user-sessions:<id> that user's session hashes
  signin-failures:<id>:<address>  {count, last}: one address's failures on the account
  signin-failures:<id>  {count, last}: every address's      signin-known:<id> addresses that signed in, by time
  signin-checking:<id>:<address>  set while a sign-in of that address to that account is being checked
"""
from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

import orjson
import redis.asyncio as aioredis
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from handlers.sign_in import Failures, Throttle, wait
from schemas.accounts import USER_ID, USER_ID_RULE, Actor, AuditRecord, User, UserRole
from schemas.config import Config
from schemas.enums import OPS_CENTRE

# A hash to check a password against when the user does not exist, so that an unknown name takes as
# long to refuse as a wrong password (the timing does not tell which names exist).
_HASHER = PasswordHasher()  # argon2id, the library's RFC 9106 low-memory profile
_DUMMY_HASH = _HASHER.hash("not a password anyone has")
USER_TOKEN_PREFIX = "socu_"
# The newest addresses remembered per account as its usual ones (a person's desk, laptop, phone...).
KNOWN_ADDRESSES = 10
MIN_PASSWORD = 10


class SignIn(str, Enum):
    ok = "ok"
    wrong = "wrong"        # unknown user or wrong password: the caller says the same for both
    throttled = "throttled"  # not checked: this address must wait (handlers/sign_in.py)
    disabled = "disabled"


@dataclass(frozen=True)
class SignInResult:
    outcome: SignIn
    user: User | None = None
    session_id: str = ""
    csrf: str = ""
    retry_after_s: float = 0.0
    throttle: Throttle | None = None


@dataclass(frozen=True)
class Session:
    user: User
    csrf: str


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def role_problem(config: Config, department: str, role: UserRole) -> str | None:
    """Why `role` cannot be held in `department`, or None."""
    district = config.district
    if department not in district.departments:
        return f"unknown department {department!r}"
    if role is UserRole.service:
        return "service credentials are the departments' tokens in the environment, not users"
    if role is UserRole.duty_officer and department != OPS_CENTRE:
        return f"a duty officer works in {OPS_CENTRE}"
    if role is UserRole.leader and department != district.leadership:
        return f"a leader belongs to {district.leadership}"
    if role in (UserRole.clerk, UserRole.supervisor) and department in (OPS_CENTRE, district.leadership):
        return f"{department} has duty officers and leaders, not {role.value}s"
    return None


def password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD:
        return f"a password has at least {MIN_PASSWORD} characters"
    if len(password) > 256:
        return "a password has at most 256 characters"
    return None


class AccountStore:
    def __init__(self, client: aioredis.Redis, prefix: str, config: Config, clock):
        self.redis, self.prefix, self.config, self.clock = client, prefix, config, clock
        self.sign_in_rules = config.district.sign_in

    def key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    # ---------------------------------------------------------------- users
    async def get(self, user_id: str) -> User | None:
        raw = await self.redis.get(self.key("user", user_id))
        return User.model_validate_json(raw) if raw else None

    async def all(self) -> list[User]:
        ids = sorted(m.decode() for m in await self.redis.smembers(self.key("users")))
        raws = await self.redis.mget([self.key("user", i) for i in ids]) if ids else []
        return [User.model_validate_json(r) for r in raws if r]

    async def add(self, user_id: str, name: str, department: str, role: UserRole, password: str) -> User:
        """ValueError when the id is not one, the user exists, the role does not fit the department, or the
        password is weak."""
        problem = (None if USER_ID.fullmatch(user_id) else USER_ID_RULE) \
            or role_problem(self.config, department, role) or password_problem(password)
        if problem:
            raise ValueError(problem)
        now = self.clock()
        user = User(user_id=user_id, name=name, department=department, role=role,
                    password_hash=await asyncio.to_thread(_HASHER.hash, password), created_at=now,
                    password_changed_at=now)
        if not await self.redis.set(self.key("user", user_id), user.model_dump_json(), nx=True):
            raise ValueError(f"user {user_id} exists")
        await self.redis.sadd(self.key("users"), user_id)
        return user

    async def _put(self, user: User) -> None:
        await self.redis.set(self.key("user", user.user_id), user.model_dump_json())

    async def disable(self, user_id: str) -> User:
        """Disabled, signed out everywhere, tokens revoked (KeyError when there is no such user)."""
        user = await self._existing(user_id)
        user = user.model_copy(update={"disabled": True})
        await self._put(user)
        await self.sign_out_everywhere(user_id)
        await self.revoke_tokens(user_id)
        return user

    async def enable(self, user_id: str) -> User:
        user = (await self._existing(user_id)).model_copy(update={"disabled": False})
        await self._put(user)
        return user

    async def reset(self, user_id: str, password: str) -> User:
        """A new password, every session ended (KeyError, ValueError)."""
        problem = password_problem(password)
        if problem:
            raise ValueError(problem)
        user = await self._existing(user_id)
        user = user.model_copy(update={"password_hash": await asyncio.to_thread(_HASHER.hash, password),
                                       "password_changed_at": self.clock()})
        await self._put(user)
        await self.sign_out_everywhere(user_id)
        return user

    async def hold(self, user_id: str, department: str) -> User:
        """Record that the person holds the department's service credential (KeyError, ValueError)."""
        if department not in self.config.district.departments:
            raise ValueError(f"unknown department {department!r}")
        user = await self._existing(user_id)
        user = user.model_copy(update={"holds": sorted({*user.holds, department})})
        await self._put(user)
        return user

    async def release(self, user_id: str, department: str) -> User:
        """The person no longer holds the department's service credential (KeyError)."""
        user = await self._existing(user_id)
        user = user.model_copy(update={"holds": [d for d in user.holds if d != department]})
        await self._put(user)
        return user

    async def _existing(self, user_id: str) -> User:
        user = await self.get(user_id)
        if user is None:
            raise KeyError(user_id)
        return user

    # ---------------------------------------------------------------- API tokens
    async def issue_token(self, user_id: str) -> str:
        """A new API token for the user, returned once: only its SHA-256 is kept."""
        await self._existing(user_id)
        token = USER_TOKEN_PREFIX + secrets.token_urlsafe(32)
        hashed = digest(token)
        await self.redis.set(self.key("token", hashed), user_id)
        await self.redis.sadd(self.key("user-tokens", user_id), hashed)
        return token

    async def revoke_tokens(self, user_id: str) -> int:
        hashes = [h.decode() for h in await self.redis.smembers(self.key("user-tokens", user_id))]
        if hashes:
            await self.redis.delete(*(self.key("token", h) for h in hashes))
        await self.redis.delete(self.key("user-tokens", user_id))
        return len(hashes)

    async def token_user(self, token: str) -> User | None:
        """The enabled user a token belongs to, or None."""
        user_id = await self.redis.get(self.key("token", digest(token)))
        user = await self.get(user_id.decode()) if user_id else None
        return user if user is not None and not user.disabled else None

    # ---------------------------------------------------------------- sign-in and sessions
    async def sign_in(self, user_id: str, password: str, address: str) -> SignInResult:
        """Checks the password unless this address must wait first (handlers/sign_in.py); an unknown
        name is counted and slowed like a known one, so the answers do not tell them apart."""
        if not USER_ID.fullmatch(user_id):
            return SignInResult(SignIn.wrong)
        # One check at a time per account and address: parallel tries would all see the failures
        # before any of them was counted.
        checking = self.key("signin-checking", user_id, address)
        if not await self.redis.set(checking, 1, nx=True, ex=10):  # a check takes well under a second
            return SignInResult(SignIn.throttled, retry_after_s=1.0, throttle=Throttle.account_address)
        try:
            return await self._check(user_id, password, address)
        finally:
            await self.redis.delete(checking)

    async def _check(self, user_id: str, password: str, address: str) -> SignInResult:
        rules = self.sign_in_rules
        now = self.clock().timestamp()
        pair_key, account_key = self.key("signin-failures", user_id, address), self.key("signin-failures", user_id)
        known_key = self.key("signin-known", user_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(pair_key, "count", "last")
            pipe.hmget(account_key, "count", "last")
            pipe.zscore(known_key, address)
            pair, account, known_at = await pipe.execute()
        known = known_at is not None and now - known_at < rules.known_address_for_s
        waiting = wait(rules, _failures(pair), _failures(account), known, now)
        if waiting.seconds > 0:
            return SignInResult(SignIn.throttled, retry_after_s=waiting.seconds, throttle=waiting.reason)
        user = await self.get(user_id)
        ok = await asyncio.to_thread(_matches, user.password_hash if user else _DUMMY_HASH, password)
        if user is None or not ok:
            failed_at = self.clock().timestamp()  # after the hash, which takes a while: the wait counts from here
            async with self.redis.pipeline(transaction=True) as pipe:
                for key in (pair_key, account_key):
                    pipe.hincrby(key, "count", 1)
                    pipe.hset(key, "last", repr(failed_at))
                    pipe.expire(key, rules.failure_memory_s)
                await pipe.execute()
            return SignInResult(SignIn.wrong, user)
        if user.disabled:  # told only to whoever knows the password
            return SignInResult(SignIn.disabled, user)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(pair_key)
            pipe.zadd(known_key, {address: now})
            pipe.zremrangebyscore(known_key, "-inf", now - rules.known_address_for_s)
            pipe.zremrangebyrank(known_key, 0, -KNOWN_ADDRESSES - 1)
            pipe.expire(known_key, rules.known_address_for_s)
            await pipe.execute()
        session_id, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
        hashed = digest(session_id)
        await self.redis.set(self.key("session", hashed), orjson.dumps({"user_id": user_id, "csrf": csrf}),
                             ex=rules.idle_expiry_s)
        await self._forget_ended_sessions(user_id)
        await self.redis.sadd(self.key("user-sessions", user_id), hashed)
        return SignInResult(SignIn.ok, user, session_id, csrf)

    async def _forget_ended_sessions(self, user_id: str) -> None:
        """Drop the hashes of sessions that expired from the user's set (it would grow by one a day)."""
        key = self.key("user-sessions", user_id)
        hashes = [h.decode() for h in await self.redis.smembers(key)]
        if hashes:
            alive = await self.redis.mget([self.key("session", h) for h in hashes])
            ended = [h for h, value in zip(hashes, alive) if value is None]
            if ended:
                await self.redis.srem(key, *ended)

    async def session(self, session_id: str) -> Session | None:
        """The session's user while it is alive and the user enabled; each use restarts its idle clock."""
        key = self.key("session", digest(session_id))
        raw = await self.redis.getex(key, ex=self.sign_in_rules.idle_expiry_s)
        if not raw:
            return None
        data = orjson.loads(raw)
        user = await self.get(data["user_id"])
        if user is None or user.disabled:
            await self.redis.delete(key)
            return None
        return Session(user, data["csrf"])

    async def alive(self, session_id: str) -> bool:
        """Whether the session still exists (its idle clock untouched)."""
        return bool(await self.redis.exists(self.key("session", digest(session_id))))

    async def sign_out(self, session_id: str) -> None:
        hashed = digest(session_id)
        raw = await self.redis.getdel(self.key("session", hashed))
        if raw:
            await self.redis.srem(self.key("user-sessions", orjson.loads(raw)["user_id"]), hashed)

    async def sign_out_everywhere(self, user_id: str) -> None:
        hashes = [h.decode() for h in await self.redis.smembers(self.key("user-sessions", user_id))]
        if hashes:
            await self.redis.delete(*(self.key("session", h) for h in hashes))
        await self.redis.delete(self.key("user-sessions", user_id))


def _failures(fields: list[bytes | None]) -> Failures:
    count, last = fields
    return Failures(int(count), float(last)) if count is not None and last is not None else Failures()


def _matches(hashed: str, password: str) -> bool:
    try:
        return _HASHER.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


def service_actor(config: Config, department: str) -> Actor:
    """A department's machine credential, named as such in the history."""
    name = config.district.departments[department].name
    return Actor(user_id=f"service:{department}", name=f"{name}·接口凭据", department=department,
                 role=UserRole.service)



# The newest entries GET /api/audit pages through; soc.audit keeps the whole year.
AUDIT_KEPT = 100_000


class AuditLog:
    """soc.audit as the API reads it: a sorted set of the records' JSON by time. Recording the same
    record again (a replay) adds nothing: the member is the record's own bytes."""

    def __init__(self, client: aioredis.Redis, prefix: str):
        self.redis, self.key = client, f"{prefix}:audit"

    async def record(self, raws: list[tuple[bytes, datetime]]) -> None:
        await self.redis.zadd(self.key, {raw: at.timestamp() for raw, at in raws})
        await self.redis.zremrangebyrank(self.key, 0, -AUDIT_KEPT - 1)

    async def page(self, offset: int, limit: int, user_id: str | None = None, what: str | None = None) -> list[AuditRecord]:
        """Newest first; with filters, among the newest 5,000 only (an admin narrows by time soon enough)."""
        if user_id is None and what is None:
            raws = await self.redis.zrevrange(self.key, offset, offset + limit - 1)
            return [AuditRecord.model_validate_json(r) for r in raws]
        found = [AuditRecord.model_validate_json(r) for r in await self.redis.zrevrange(self.key, 0, 4_999)]
        found = [r for r in found if (user_id is None or r.user_id == user_id)
                 and (what is None or r.what == what or r.what.startswith(what + "."))]
        return found[offset:offset + limit]
