"""`soc users add|disable|enable|reset|token|revoke|hold|release|list`: the accounts in SOC_REDIS_URL, managed from a
shell on the operations side (the admin role does the same over /api/users). Each change is written
to soc.audit as done by the operator at this machine.

A password is read from the terminal without echo, or from stdin with --password-stdin (scripts);
`reset` without either generates one and prints it once. `token` prints a new API token once.
"""
from __future__ import annotations

import asyncio
import getpass
import os
import secrets
import socket
import sys
import uuid
from collections.abc import Awaitable, Callable

from schemas.accounts import Actor, AuditRecord, User, UserRole
from schemas.config import load_config
from streams import topics
from streams.accounts import AccountStore
from streams.clock import utc_now
from streams.settings import Settings
from streams.store import redis_client

# The people `soc dev` signs in as: user id, display name, department, role.
DEMO_USERS = (
    ("duty", "张值班", "ops_centre", UserRole.duty_officer),
    ("duty2", "李值班", "ops_centre", UserRole.duty_officer),
    ("leader", "王主任", "district_leadership", UserRole.leader),
    ("admin", "系统管理员", "ops_centre", UserRole.admin),
    ("flood", "陈三防", "flood_control", UserRole.clerk),
    ("flood.lead", "周科长", "flood_control", UserRole.supervisor),
    ("traffic", "刘交警", "traffic_police", UserRole.clerk),
    ("city", "赵城管", "city_management", UserRole.clerk),
    ("site", "孙安监", "construction_safety", UserRole.clerk),
    ("env", "吴环保", "environment", UserRole.clerk),
    ("haibin", "海滨社区网格员", "ws_haibin", UserRole.clerk),
)


def generated_password() -> str:
    return secrets.token_urlsafe(12)


def _operator() -> Actor:
    """Whoever runs the command, as the audit trail names them."""
    who = os.environ.get("SUDO_USER") or getpass.getuser()
    return Actor(user_id=f"shell:{who}", name=f"{who}@{socket.gethostname()}", department="ops_centre",
                 role=UserRole.admin)


def audit(settings: Settings, what: str, target: str, detail: str = "") -> None:
    """Best effort: the change is made; without a reachable broker it is said on stderr."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    operator = _operator()
    record = AuditRecord(audit_id=uuid.uuid4().hex, at=utc_now(), kind="users", actor=operator,
                         user_id=operator.user_id, what=what, target=target, detail=detail, remote="cli")
    try:
        producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all",
                                 max_block_ms=5000, **settings.kafka_client_kwargs())
        try:
            producer.send(topics.AUDIT, key=record.user_id.encode(), value=record.model_dump_json().encode()).get(10)
        finally:
            producer.close(timeout=5)
    except KafkaError as exc:
        print(f"warning: {what} {target} is done but not in {topics.AUDIT} ({type(exc).__name__})", file=sys.stderr)


def read_password(args) -> str | None:
    if getattr(args, "password_stdin", False):
        # Byte for byte but the line's own end, as the pages send it: a space is part of a password.
        line = sys.stdin.readline()
        return line[:-2] if line.endswith("\r\n") else line[:-1] if line.endswith("\n") else line
    if sys.stdin.isatty():
        first = getpass.getpass("password: ")
        if getpass.getpass("again: ") != first:
            raise ValueError("the passwords differ")
        return first
    return None


def run(args) -> int:
    settings = Settings()
    config = load_config(settings.config_dir)

    async def with_store(call: Callable[[AccountStore], Awaitable[int]]) -> int:
        client = redis_client(settings.redis_url)
        try:
            return await call(AccountStore(client, settings.redis_prefix, config, utc_now))
        finally:
            await client.aclose()

    try:
        return asyncio.run(with_store(lambda store: COMMANDS[args.users_command](store, args, settings)))
    except (KeyError, ValueError) as exc:
        message = f"no user {exc.args[0]}" if isinstance(exc, KeyError) else str(exc)
        print(f"soc users {args.users_command}: {message}", file=sys.stderr)
        return 2


async def _add(store: AccountStore, args, settings: Settings) -> int:
    password = read_password(args)
    generated = password is None
    password = password or generated_password()
    user = await store.add(args.user_id, args.name or args.user_id, args.department, UserRole(args.role), password)
    audit(settings, "users.add", user.user_id, f"{user.department} {user.role.value}")
    print(f"added {user.user_id} ({user.name}, {user.department}, {user.role.value})")
    if generated:
        print(f"password (shown once): {password}")
    return 0


async def _reset(store: AccountStore, args, settings: Settings) -> int:
    password = read_password(args)
    generated = password is None
    password = password or generated_password()
    await store.reset(args.user_id, password)
    audit(settings, "users.reset", args.user_id)
    print(f"reset {args.user_id}: signed out everywhere")
    if generated:
        print(f"password (shown once): {password}")
    return 0


async def _disable(store: AccountStore, args, settings: Settings) -> int:
    await store.disable(args.user_id)
    audit(settings, "users.disable", args.user_id)
    print(f"disabled {args.user_id}: signed out everywhere, tokens revoked")
    return 0


async def _enable(store: AccountStore, args, settings: Settings) -> int:
    await store.enable(args.user_id)
    audit(settings, "users.enable", args.user_id)
    print(f"enabled {args.user_id}")
    return 0


async def _token(store: AccountStore, args, settings: Settings) -> int:
    token = await store.issue_token(args.user_id)
    audit(settings, "users.token", args.user_id)
    print(f"API token for {args.user_id} (shown once; Authorization: Bearer <token>):\n{token}")
    return 0


async def _revoke(store: AccountStore, args, settings: Settings) -> int:
    count = await store.revoke_tokens(args.user_id)
    audit(settings, "users.revoke", args.user_id)
    print(f"revoked {count} token(s) of {args.user_id}")
    return 0


async def _hold(store: AccountStore, args, settings: Settings) -> int:
    user = await store.hold(args.user_id, args.department)
    audit(settings, "users.hold", args.user_id, args.department)
    print(f"{args.user_id} holds the service credential of {args.department}: "
          f"what it resolves, {args.user_id} does not verify (holds: {', '.join(user.holds)})")
    return 0


async def _release(store: AccountStore, args, settings: Settings) -> int:
    user = await store.release(args.user_id, args.department)
    audit(settings, "users.release", args.user_id, args.department)
    print(f"{args.user_id} no longer holds the service credential of {args.department} "
          f"(holds: {', '.join(user.holds) or 'none'})")
    return 0


async def _list(store: AccountStore, args, settings: Settings) -> int:
    for user in await store.all():
        state = "disabled" if user.disabled else "active"
        holds = f" holds {','.join(user.holds)}" if user.holds else ""
        print(f"{user.user_id:<20} {user.name:<14} {user.department:<22} {user.role.value:<13} {state}{holds}")
    return 0


COMMANDS = {"add": _add, "reset": _reset, "disable": _disable, "enable": _enable, "token": _token,
            "revoke": _revoke, "hold": _hold, "release": _release, "list": _list}


def add_arguments(parser) -> None:
    sub = parser.add_subparsers(dest="users_command", required=True)
    p = sub.add_parser("add", help="a new user (password from the terminal, --password-stdin, or generated)")
    p.add_argument("user_id")
    p.add_argument("--name", help="the display name the history shows (default: the user id)")
    p.add_argument("--department", required=True)
    p.add_argument("--role", required=True, choices=[r.value for r in UserRole if r is not UserRole.service])
    p.add_argument("--password-stdin", action="store_true")
    for name, text in (("reset", "a new password (generated unless given), sessions ended"),
                       ("disable", "no more sign-ins; sessions ended, tokens revoked"),
                       ("enable", "sign-ins allowed again"),
                       ("token", "a new personal API token, printed once"),
                       ("revoke", "revoke every API token of the user")):
        p = sub.add_parser(name, help=text)
        p.add_argument("user_id")
        if name == "reset":
            p.add_argument("--password-stdin", action="store_true")
    for name, text in (("hold", "record that the user holds a department's service credential (SOC_TOKEN_<DEPT>)"),
                       ("release", "the user no longer holds that department's service credential")):
        p = sub.add_parser(name, help=text)
        p.add_argument("user_id")
        p.add_argument("department")
    sub.add_parser("list", help="every user, with department, role and state")


def all_users(settings: Settings, config) -> list[User]:
    """The accounts under SOC_REDIS_PREFIX (RedisError or OSError when Redis does not answer)."""
    async def read() -> list[User]:
        client = redis_client(settings.redis_url)
        try:
            return await AccountStore(client, settings.redis_prefix, config, utc_now).all()
        finally:
            await client.aclose()

    return asyncio.run(read())


def add_demo_users(redis_url: str, prefix: str, config) -> dict[str, str]:
    """`soc dev`'s people, each with a fresh password: user id -> password."""
    async def add() -> dict[str, str]:
        client = redis_client(redis_url)
        store = AccountStore(client, prefix, config, utc_now)
        passwords = {}
        try:
            for user_id, name, department, role in DEMO_USERS:
                if department in config.district.departments:
                    passwords[user_id] = f"demo-{generated_password()}"
                    await store.add(user_id, name, department, role, passwords[user_id])
        finally:
            await client.aclose()
        return passwords

    return asyncio.run(add())
