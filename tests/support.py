"""Helpers for the tiers that run the real stack: Tansu broker, Redis and worker processes."""
from __future__ import annotations

import asyncio
import io
import json
import re
import shutil
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
from kafka import KafkaConsumer, KafkaProducer
from PIL import Image

from schemas.accounts import UserRole
from schemas.config import Config, load_config
from schemas.records import Ticket
from streams.accounts import AccountStore
from streams.clock import utc_now
from streams.ops.devstack import Process, Stack, http_ok, wait_for
from streams.settings import REPO_ROOT

CONFIG = load_config(REPO_ROOT / "deploy" / "config")
TEST_PASSWORD = "correct horse battery staple"
# Pipeline.request(department=DUTY_OFFICER): a duty officer of the centre, a person (what a department's
# service token resolved, the centre's token may not verify).
DUTY_OFFICER = "duty_officer"



def marker() -> str:
    """Eight letters that keep a test's ids and dedup keys apart from every other test's. Letters only (the hex
    digits moved to g-p): with digits, about one marker in twenty made a hotline case number such as
    12345-13864572-1 that reads as a phone number, is stored masked, and is never found by the test."""
    return uuid.uuid4().hex[:8].translate(str.maketrans("0123456789", "ghijklmnop"))

def poll(condition: Callable[[], object], timeout: float = 30.0, what: str = "condition", interval: float = 0.05):
    """Poll until condition() is truthy and return its value; fail with `what` after the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


@dataclass
class Worker:
    process: Process
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.process.log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class Pipeline:
    stack: Stack
    worker: Worker
    tokens: dict[str, str]
    redis: redis.Redis
    producer: KafkaProducer
    wall_token: str | None = None  # the wall screens' read-only token
    config: Config = CONFIG
    duty_token: str | None = None  # the API token of the stack's own duty officer, made when first asked for

    def accounts(self, call: Callable[[AccountStore], object]):
        """Run `call(store)` (a coroutine) against the stack's accounts, as `soc users` would: on a thread
        of its own, so that it works under a running loop too (Playwright's sync API keeps one)."""
        async def run():
            client = aioredis.from_url(self.stack.redis_url)
            try:
                return await call(AccountStore(client, self.stack.redis_prefix, self.config, utc_now))
            finally:
                await client.aclose()
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(asyncio.run, run()).result()

    def add_user(self, user_id: str, department: str, role: UserRole | str, name: str | None = None,
                 password: str = TEST_PASSWORD) -> str:
        """A user (the test's own name, so tests do not meet); returns the user id."""
        self.accounts(lambda store: store.add(user_id, name or user_id, department, UserRole(role), password))
        return user_id

    def sign_in(self, user_id: str, password: str = TEST_PASSWORD) -> dict[str, str]:
        """Headers that act as the signed-in user: the session cookie and its CSRF token."""
        status, body, headers = self.raw_request("POST", "/api/login", {"user": user_id, "password": password})
        assert status == 200, (status, body)
        cookie = headers["Set-Cookie"].split(";", 1)[0]
        return {"Cookie": cookie, "X-CSRF-Token": body["csrf"]}

    def user_token(self, user_id: str) -> str:
        return self.accounts(lambda store: store.issue_token(user_id))

    def send(self, topic: str, value: bytes | dict | None, key: bytes | None = None) -> None:
        if isinstance(value, dict):
            value = json.dumps(value, ensure_ascii=False).encode()
        self.producer.send(topic, key=key, value=value)
        self.producer.flush()

    def key(self, *parts: str) -> str:
        return ":".join((self.stack.redis_prefix, *parts))

    def ticket(self, ticket_id: str) -> Ticket | None:
        raw = self.redis.hget(self.key("ticket", ticket_id), "json")
        return None if raw is None else Ticket.model_validate_json(raw)

    def inbox(self, department: str) -> list[Ticket]:
        ids = [i.decode() for i in self.redis.zrange(self.key("inbox", department), 0, -1)]
        return [t for t in (self.ticket(i) for i in ids) if t is not None]

    def tickets_where(self, predicate: Callable[[Ticket], bool]) -> list[Ticket]:
        ids = [i.decode() for i in self.redis.zrange(self.key("tickets"), 0, -1)]
        return [t for t in (self.ticket(i) for i in ids) if t is not None and predicate(t)]

    def request(self, method: str, path: str, department: str | None = None, body: dict | bytes | None = None,
                token: str | None = None, headers: dict | None = None) -> tuple[int, dict]:
        """HTTP call to the worker; returns (status, JSON body)."""
        all_headers = dict(headers or {})
        token = token if token is not None else (self.credential(department) if department else None)
        if token:
            all_headers["Authorization"] = f"Bearer {token}"
        status, payload, _ = self.raw_request(method, path, body, all_headers)
        return status, payload

    def raw_request(self, method: str, path: str, body: dict | bytes | None = None,
                    headers: dict | None = None) -> tuple[int, dict, dict]:
        """(status, JSON body, response headers), with exactly the headers given."""
        all_headers = dict(headers or {})
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        if data is not None:
            all_headers.setdefault("Content-Type", "application/json")
        request = urllib.request.Request(self.worker.url + path, data=data, method=method, headers=all_headers)
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                return response.status, json.loads(response.read() or b"null"), dict(response.headers)
        except urllib.error.HTTPError as error:
            payload = error.read()
            try:
                return error.code, json.loads(payload), dict(error.headers)
            except ValueError:
                return error.code, {"raw": payload.decode(errors="replace")}, dict(error.headers)

    def credential(self, who: str) -> str:
        """A department's service token, or for DUTY_OFFICER a duty officer's personal API token."""
        if who != DUTY_OFFICER:
            return self.tokens[who]
        if self.duty_token is None:
            officer = self.add_user(f"duty.{uuid.uuid4().hex[:8]}", "ops_centre", UserRole.duty_officer, name="测试值班员")
            self.duty_token = self.user_token(officer)
        return self.duty_token

    def get(self, path: str, department: str | None = None, **kw) -> tuple[int, dict]:
        return self.request("GET", path, department, **kw)

    def post(self, path: str, department: str | None, body: dict | bytes | None = None, **kw) -> tuple[int, dict]:
        return self.request("POST", path, department, body, **kw)

    def upload_after_photo(self, ticket_id: str, department: str | None = None, token: str | None = None,
                           headers: dict | None = None) -> dict:
        """Upload a photo taken after the work (stage `after`) on a ticket, as its crew does before resolving a
        category routing.yaml's evidence rule lists; acts as `department`, `token` or the signed-in `headers`.
        Returns the answer's body. A 202 (not applied within 5 s) still comes before a later resolve: both are
        commands on the ticket's own key."""
        body, content_type = after_photo_form()
        status, answer = self.request("POST", f"/api/tickets/{ticket_id}/evidence", department, body, token=token,
                                      headers={**(headers or {}), "Content-Type": content_type})
        assert status in (201, 202), (status, answer)
        return answer

    def restart_worker(self) -> None:
        """Stop the worker and start it again on the same web port."""
        self.worker.process.stop()
        self.stack.processes.remove(self.worker.process)
        self.worker.process, _ = self.stack.start_worker(web_port=self.worker.port)
        wait_ready(self.worker)

    def read_topic(self, topic: str) -> list:
        consumer = KafkaConsumer(topic, bootstrap_servers=self.stack.bootstrap, auto_offset_reset="earliest",
                                 enable_auto_commit=False, group_id=None, consumer_timeout_ms=1500)
        try:
            return list(consumer)
        finally:
            consumer.close()


def after_photo_form() -> tuple[bytes, str]:
    """The multipart/form-data body of POST /api/tickets/{id}/evidence with a small real JPEG of stage `after`,
    and its Content-Type."""
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (90, 140, 60)).save(out, "JPEG")
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="stage"\r\n\r\nafter\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="after.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n").encode() + out.getvalue() + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def wait_ready(worker: Worker, timeout: float = 180) -> None:
    def ready() -> bool:
        if worker.process.popen.poll() is not None:
            pytest.fail(f"worker exited with {worker.process.popen.returncode}:\n{worker.log_tail()}")
        return http_ok(f"{worker.url}/readyz/processing")

    wait_for(ready, timeout, "the worker to join its consumer group", 0.25)



def config_with_rules(tmp_path_factory, name: str, *edits: tuple[str, str]) -> Path:
    """A copy of deploy/config (as `config_without_windows` makes it) whose rules.yaml has each (pattern,
    replacement) applied, line by line: a short hold or heartbeat, so that what takes minutes in the
    district takes seconds in a test."""
    config_dir = config_without_windows(tmp_path_factory.mktemp(name) / "config")
    rules = config_dir / "rules.yaml"
    text = rules.read_text(encoding="utf-8")
    for pattern, replacement in edits:
        text, found = re.subn(pattern, replacement, text, flags=re.M)
        assert found, f"rules.yaml has no line matching {pattern!r}"
    rules.write_text(text, encoding="utf-8")
    return config_dir


def config_without_windows(config_dir: Path) -> Path:
    """deploy/config, copied to `config_dir` without its maintenance windows. A window is of the wall
    clock (the pump stations' weekly test, Mondays 02:00-03:00 in the district): with it, a suite run in
    that hour found every pump reading suppressed. The windows are tested on a clock of their own, in
    tests/unit/test_silences.py."""
    shutil.copytree(REPO_ROOT / "deploy" / "config", config_dir)
    rules = config_dir / "rules.yaml"
    text, found = re.subn(r"^maintenance:\n(?:(?:  .*)?\n)*?(?=\S)", "maintenance: []\n\n",
                          rules.read_text(encoding="utf-8"), flags=re.M)
    assert found == 1, "rules.yaml has no maintenance section"
    rules.write_text(text, encoding="utf-8")
    return config_dir


@contextmanager
def running_pipeline(log_dir: Path, config_dir: Path | None = None, private_redis: bool = False,
                     **env: str) -> Iterator[Pipeline]:
    """Tansu + Redis + topics + one worker, torn down (Redis keys included) on exit."""
    config_dir = config_dir or config_without_windows(log_dir / "config")
    config = load_config(config_dir)
    tokens = {dept: f"test-{dept}-{uuid.uuid4().hex[:8]}" for dept in config.district.departments}
    wall_token = f"test-wall-{uuid.uuid4().hex[:8]}" if config.district.wall_token_env else None
    env = {"SOC_GAUGES_INTERVAL_S": "1", "SOC_SIGN_IN_BURST": "100000", **env,
           **{config.district.departments[d].token_env: t for d, t in tokens.items()},
           **({config.district.wall_token_env: wall_token} if wall_token else {})}
    stack = Stack.start(log_dir, redis_prefix=f"soc-test-{uuid.uuid4().hex[:8]}", extra_env=env,
                        config_dir=config_dir, private_redis=private_redis)
    client = producer = None
    try:
        process, port = stack.start_worker()
        worker = Worker(process, port)
        wait_ready(worker)
        client = redis.Redis.from_url(stack.redis_url)
        producer = KafkaProducer(bootstrap_servers=stack.bootstrap, acks="all", linger_ms=0,
                                 max_request_size=4 * 1024 * 1024)
        yield Pipeline(stack, worker, tokens, client, producer, wall_token, config)
    finally:
        if producer:
            producer.close()
        if client:
            for key in client.scan_iter(f"{stack.redis_prefix}:*"):
                client.delete(key)
        stack.stop()
