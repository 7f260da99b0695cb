"""The notifier's sender against the machine's Redis and real loopback receivers (aiohttp on 127.0.0.1,
ports chosen by the OS) and a real SMTP server (aiosmtpd). Time is a manual clock the sender and the
receivers share, so a 30-second outage or a minute's rate window takes no wall-clock time."""
from __future__ import annotations

import asyncio
import os
import re
from datetime import datetime, timedelta

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from prometheus_client import CollectorRegistry

from handlers import notify
from schemas.enums import Category, Severity, Source
from schemas.notify import NotifyConfig
from streams.metrics import Metrics
from streams.notify_store import NotificationStore
from streams.ops.demo_receiver import check_dingtalk
from streams.topology.notifier import HORIZON, Notifier
from tests.integration.test_notify_receivers import smtp_server  # noqa: F401 (a fixture)
from tests.support import CONFIG, marker
from tests.unit.test_notify import CITIZEN, DAY, opened

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

REDIS_URL = os.environ.get("SOC_REDIS_URL", "redis://127.0.0.1:6379/0")
SECRET = "SEC0123456789abcdef"
TICK = timedelta(seconds=0.5)


class Clock:
    def __init__(self, at: datetime):
        self.at = at

    def __call__(self) -> datetime:
        return self.at

    def advance(self, by: timedelta = TICK) -> None:
        self.at += by


class Robot:
    """A DingTalk robot endpoint that checks the signature against the shared clock and can be down."""

    def __init__(self, clock: Clock):
        self.clock = clock
        self.down_until: datetime | None = None
        self.accepted: list[tuple[datetime, dict]] = []
        self.posts: list[datetime] = []

    async def send(self, request: web.Request) -> web.Response:
        now = self.clock()
        self.posts.append(now)
        if self.down_until is not None and now < self.down_until:
            return web.Response(status=500, text="upstream unavailable")
        answer, message = check_dingtalk(request.rel_url.query, await request.read(), SECRET, "robot",
                                         int(now.timestamp() * 1000))
        if message is not None:
            self.accepted.append((now, message))
        return web.json_response(answer)


@pytest.fixture
async def robot():
    clock = Clock(DAY)
    receiver = Robot(clock)
    app = web.Application()
    app.router.add_post("/robot/send", receiver.send)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    receiver.url = f"http://{host}:{port}/robot/send?access_token=robot"
    try:
        yield receiver
    finally:
        await runner.cleanup()


@pytest.fixture
async def redis_client():
    client = aioredis.from_url(REDIS_URL)
    prefix = f"soc-test-notify-{marker()}"
    try:
        yield client, prefix
    finally:
        async for key in client.scan_iter(f"{prefix}:*"):
            await client.delete(key)
        await client.aclose()


def rules_for(channels: dict, subscriptions: list, env: dict, **extra) -> notify.Rules:
    spec = NotifyConfig.model_validate({"channels": channels, "subscriptions": subscriptions, **extra})
    return notify.compile_rules(spec, CONFIG, env, "https://soc.example")


def flood_rules(robot: Robot, **extra) -> notify.Rules:
    return rules_for(
        {"flood_duty": {"type": "dingtalk", "url_env": "URL", "secret_env": "SECRET"}},
        [{"departments": ["flood_control"], "min_severity": "yellow", "events": ["dispatched", "severity_raised"],
          "channels": ["flood_duty"]}],
        {"URL": robot.url, "SECRET": SECRET, "SOC_DUTY_WANG_QIANG_PHONE": "13800000001"}, **extra)


def make_notifier(rules, redis_client, clock, dead: list | None = None) -> tuple[Notifier, Metrics]:
    client, prefix = redis_client
    metrics = Metrics(CollectorRegistry())
    store = NotificationStore(client, prefix, HORIZON)
    return Notifier(rules, store, clock, metrics, (dead if dead is not None else []).append), metrics


async def run_for(notifier: Notifier, clock: Clock, span: timedelta, feed=None) -> None:
    """Sender ticks every 0.5 s of the manual clock; feed(now) may queue more first."""
    end = clock() + span
    while clock() < end:
        if feed is not None:
            await feed(clock())
        await notifier.send_due()
        await notifier.passes_done()
        clock.advance()


def counted(message: dict) -> int:
    """How many deliveries one DingTalk message carries: 1, or the digest's count."""
    found = re.search(r"等 (\d+) 条工单通知", message["markdown"]["title"])
    return int(found.group(1)) if found else 1


def sample(metrics: Metrics, result: str) -> float:
    return sum(s.value for m in metrics.registry.collect() if m.name == "soc_notifications"
               for s in m.samples if s.name.endswith("_total") and s.labels["result"] == result)


async def test_a_receiver_down_for_30_s_gets_the_message_once_it_recovers_exactly_once(robot, redis_client):
    clock = robot.clock
    robot.down_until = DAY + timedelta(seconds=30)
    notifier, metrics = make_notifier(flood_rules(robot), redis_client, clock)
    _, ticket = opened(CONFIG, Severity.red, DAY)
    assert await notifier.take([ticket]) == 1
    await run_for(notifier, clock, timedelta(minutes=3))
    await notifier.close()
    assert len(robot.accepted) == 1
    at, message = robot.accepted[0]
    assert DAY + timedelta(seconds=30) <= at < DAY + timedelta(seconds=35)
    # Backoff 1, 2, 4, 8, 16 s: six posts in all, five refused.
    assert [round((p - DAY).total_seconds()) for p in robot.posts] == [0, 1, 3, 7, 15, 31]
    assert message["at"]["atMobiles"] == ["13800000001"]
    log = await notifier.store.ticket_entries(ticket.ticket_id)
    assert [e.result for e in log] == ["queued", *["failed"] * 5, "delivered"]
    assert log[1].error == "HTTP 500" and log[-1].attempt == 6
    assert (sample(metrics, "failed"), sample(metrics, "delivered")) == (5, 1)
    assert await notifier.store.pending("flood_duty") == 0


async def test_200_red_tickets_in_10_s_make_at_most_20_posts_a_minute_and_lose_nothing(robot, redis_client):
    clock = robot.clock
    notifier, metrics = make_notifier(flood_rules(robot), redis_client, clock)
    tickets = [opened(CONFIG, Severity.red, DAY + timedelta(seconds=n // 20), n=n + 1)[1] for n in range(200)]
    queue = list(tickets)

    async def feed(now):
        due = [t for t in queue if t.dispatched_at <= now]
        for t in due:
            queue.remove(t)
        await notifier.take(due)

    await run_for(notifier, clock, timedelta(minutes=5), feed)
    await notifier.close()
    posts = robot.posts
    assert posts and all(sum(1 for q in posts if p <= q < p + timedelta(seconds=60)) <= 20 for p in posts)
    assert sum(counted(m) for _, m in robot.accepted) == 200
    delivered = [e for t in tickets for e in await notifier.store.ticket_entries(t.ticket_id)
                 if e.result == "delivered"]
    assert sorted({e.ticket_id for e in delivered}) == sorted(t.ticket_id for t in tickets)
    assert sample(metrics, "delivered") == 200 and sample(metrics, "dead") == 0


async def test_replays_and_a_restarted_notifier_queue_nothing_twice(robot, redis_client):
    clock = robot.clock
    rules = flood_rules(robot)
    notifier, _ = make_notifier(rules, redis_client, clock)
    state, ticket = opened(CONFIG, Severity.red, DAY)
    assert await notifier.take([ticket]) == 1
    await run_for(notifier, clock, timedelta(seconds=5))
    assert await notifier.take([ticket]) == 0
    await notifier.close()
    # A new process (another lease owner; the old one released its lease when it closed) reading the
    # same topic again, and a state still holding the delivery: nothing is queued or sent again.
    restarted, metrics = make_notifier(rules, redis_client, clock)
    assert await restarted.take([ticket, ticket]) == 0
    await run_for(restarted, clock, timedelta(seconds=5))
    await restarted.close()
    assert len(robot.accepted) == 1
    assert sample(metrics, "queued") == 0


async def test_a_dead_receiver_is_given_up_after_its_age_into_the_dead_letters(redis_client):
    clock = Clock(DAY)
    rules = rules_for({"ops": {"type": "webhook", "url_env": "URL", "secret_env": "SECRET"}},
                      [{"departments": ["flood_control"], "events": ["dispatched"], "channels": ["ops"]}],
                      {"URL": "http://127.0.0.1:9/hook", "SECRET": "k"},  # port 9 (discard): nothing listens
                      delivery={"give_up_after_s": 20, "retry_initial_s": 1, "retry_max_s": 4})
    dead: list = []
    notifier, metrics = make_notifier(rules, redis_client, clock, dead)
    _, ticket = opened(CONFIG, Severity.red, DAY)
    await notifier.take([ticket])
    await run_for(notifier, clock, timedelta(seconds=40))
    await notifier.close()
    [letter] = dead
    assert letter.error_type == "notification_undeliverable" and letter.source_topic == "soc.tickets"
    assert letter.message.startswith("channel ops (webhook): ClientConnectorError")
    assert CITIZEN not in (letter.raw_text or "") and CITIZEN[:3] + "****" + CITIZEN[-4:] in letter.raw_text
    log = await notifier.store.ticket_entries(ticket.ticket_id)
    assert log[-1].result == "dead" and sample(metrics, "dead") == 1
    assert await notifier.store.pending("ops") == 0


async def test_a_delivery_that_waited_out_an_outage_of_the_notifier_is_still_sent(robot, redis_client):
    clock = robot.clock
    notifier, metrics = make_notifier(flood_rules(robot, delivery={"give_up_after_s": 20}), redis_client, clock)
    _, ticket = opened(CONFIG, Severity.red, DAY)
    await notifier.take([ticket])
    clock.advance(timedelta(minutes=10))  # no worker sent anything meanwhile
    await run_for(notifier, clock, timedelta(seconds=2))
    await notifier.close()
    assert len(robot.accepted) == 1 and sample(metrics, "dead") == 0


async def test_night_yellow_is_logged_muted_and_never_sent(robot, redis_client):
    clock = robot.clock
    rules = rules_for(
        {"city": {"type": "dingtalk", "url_env": "URL", "secret_env": "SECRET"}},
        [{"departments": ["city_management", "ws_yugang"], "events": ["dispatched"], "channels": ["city"],
          "mute_time_intervals": ["night"]}],
        {"URL": robot.url, "SECRET": SECRET},
        time_intervals={"night": [{"times": [{"start_time": "22:00", "end_time": "07:30"}]}]})
    notifier, metrics = make_notifier(rules, redis_client, clock)
    night = datetime(2026, 12, 2, 23, 0, tzinfo=DAY.tzinfo)
    _, ticket = opened(CONFIG, Severity.yellow, night, Category.city_street_order, Source.city)
    clock.at = night
    assert await notifier.take([ticket]) == 1
    await run_for(notifier, clock, timedelta(seconds=60))
    await notifier.close()
    assert robot.posts == []
    assert [e.result for e in await notifier.store.ticket_entries(ticket.ticket_id)] == ["muted"]
    assert sample(metrics, "muted") == 1


async def test_leadership_email_goes_through_a_real_smtp_server(smtp_server, redis_client):
    host, port, inbox = smtp_server
    clock = Clock(DAY)
    rules = rules_for(
        {"mail": {"type": "email", "url_env": "URL", "sender": "soc@haiwan.example",
                  "recipients": ["leaders@haiwan.example"]}},
        [{"departments": ["flood_control"], "min_severity": "red", "events": ["dispatched"], "channels": ["mail"]}],
        {"URL": f"smtp://{host}:{port}"})
    notifier, _ = make_notifier(rules, redis_client, clock)
    _, ticket = opened(CONFIG, Severity.red, DAY)
    await notifier.take([ticket])
    await notifier.send_due()
    await notifier.passes_done()  # the SMTP exchange runs in a thread while this loop serves the server
    envelope = await asyncio.wait_for(inbox.messages.get(), 5)
    await notifier.close()
    assert envelope.rcpt_tos == ["leaders@haiwan.example"]
    text = envelope.content.decode("utf-8", "replace")
    assert CITIZEN not in text and "=?utf-8?" in text  # the Chinese subject, encoded
    entries = await notifier.store.ticket_entries(ticket.ticket_id)
    assert entries[-1].result == "delivered" and entries[-1].channel_type == "email"


@pytest.fixture
async def starttls_server(tmp_path, monkeypatch):
    """aiosmtpd that requires STARTTLS, with a certificate for 127.0.0.1 that the sender trusts through
    SSL_CERT_FILE (as an operator would point it at a private CA)."""
    import ssl
    import subprocess

    from aiosmtpd.smtp import SMTP

    from tests.integration.test_notify_receivers import Inbox

    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    inbox = Inbox()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(inbox, hostname="soc-test", tls_context=context,
                                                   require_starttls=True), "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], inbox
    finally:
        server.close()
        await server.wait_closed()


async def test_email_uses_starttls_when_the_server_offers_it(starttls_server, redis_client):
    port, inbox = starttls_server
    rules = rules_for(
        {"mail": {"type": "email", "url_env": "URL", "sender": "soc@haiwan.example",
                  "recipients": ["leaders@haiwan.example"]}},
        [{"departments": ["flood_control"], "min_severity": "red", "events": ["dispatched"], "channels": ["mail"]}],
        {"URL": f"smtp://127.0.0.1:{port}"})
    notifier, _ = make_notifier(rules, redis_client, Clock(DAY))
    _, ticket = opened(CONFIG, Severity.red, DAY)
    await notifier.take([ticket])
    await notifier.send_due()
    await notifier.passes_done()
    envelope = await asyncio.wait_for(inbox.messages.get(), 10)
    await notifier.close()
    # require_starttls: the server refuses MAIL FROM on a plain connection, so arriving proves TLS.
    assert envelope.rcpt_tos == ["leaders@haiwan.example"]
    assert (await notifier.store.ticket_entries(ticket.ticket_id))[-1].result == "delivered"


async def test_a_change_first_seen_after_the_give_up_age_is_logged_expired_and_not_pushed(robot, redis_client):
    clock = robot.clock
    notifier, metrics = make_notifier(flood_rules(robot, delivery={"give_up_after_s": 600}), redis_client, clock)
    _, ticket = opened(CONFIG, Severity.red, DAY)
    clock.advance(timedelta(hours=2))  # the notifier deployed onto a two-hour-old ticket
    assert await notifier.take([ticket]) == 1
    assert await notifier.take([ticket]) == 0  # logged once, however often the ticket is read
    await run_for(notifier, clock, timedelta(seconds=5))
    await notifier.close()
    assert robot.posts == []
    assert [e.result for e in await notifier.store.ticket_entries(ticket.ticket_id)] == ["expired"]
    assert sample(metrics, "expired") == 1
