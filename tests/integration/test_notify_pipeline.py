"""Notifications through the whole stack: Tansu, Redis, a worker with the real config, and loopback
receivers (DingTalk, WeCom, webhook) that check what each vendor checks. A Feishu channel points at a
port nobody listens on, so its deliveries end in soc.deadletter."""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import shutil
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pytest
from aiohttp import web

from handlers import duty
from streams.ops.demo_receiver import check_dingtalk
from tests.integration.payloads import Builder
from tests.support import CONFIG, Pipeline, poll, running_pipeline

pytestmark = pytest.mark.integration

DINGTALK_SECRET = "SEC0123456789abcdef"
WEBHOOK_SECRET = "ops-centre-key"
CITIZEN = "13800138000"
ROOT = Path(__file__).resolve().parents[2]


class Receivers:
    """aiohttp receivers on their own loop in a thread; what they accepted, per channel."""

    def __init__(self):
        self.accepted: dict[str, list[dict]] = {"dingtalk": [], "wecom": [], "webhook": []}
        self.raw: list[bytes] = []
        self.loop = asyncio.new_event_loop()
        self.port = 0
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_post("/robot/send", self.dingtalk)
        app.router.add_post("/cgi-bin/webhook/send", self.wecom)
        app.router.add_post("/hook", self.webhook)
        self.runner = web.AppRunner(app)
        self.loop.run_until_complete(self.runner.setup())
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = self.runner.addresses[0][1]
        ready.set()
        self.loop.run_forever()

    async def dingtalk(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.raw.append(raw)
        answer, message = check_dingtalk(request.rel_url.query, raw, DINGTALK_SECRET, "robot", int(time.time() * 1000))
        if message is not None:
            self.accepted["dingtalk"].append(message)
        return web.json_response(answer)

    async def wecom(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.raw.append(raw)
        if request.rel_url.query.get("key") != "robot-key":
            return web.json_response({"errcode": 93000, "errmsg": "invalid webhook url"})
        body = json.loads(raw)
        if body.get("msgtype") == "markdown" and len(body["markdown"]["content"].encode()) > 4096:
            return web.json_response({"errcode": 40058, "errmsg": "markdown.content exceed max length 4096"})
        self.accepted["wecom"].append(body)
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def webhook(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.raw.append(raw)
        expected = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), raw, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(request.headers.get("X-SOC-Signature", ""), expected):
            return web.Response(status=401)
        self.accepted["webhook"].append(json.loads(raw))
        return web.Response(status=204)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def closed_port() -> int:
    """A port that was free a moment ago and that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def member_phone(n: int) -> str:
    return f"1390000{n:04d}"


@contextmanager
def notifying_pipeline(work_dir: Path, receivers: Receivers, give_up_after_s: float = 4, **env: str) -> Iterator[Pipeline]:
    """A stack whose channels point at the receivers (the Feishu one at a closed port), with short
    grouping waits and give-up age, and a phone number for every duty member."""
    config_dir = work_dir / "config"
    shutil.copytree(ROOT / "deploy" / "config", config_dir)
    notify_yaml = config_dir / "notify.yaml"
    text = re.sub(r"^grouping: .*$", "grouping: {group_wait_s: 1, group_wait_red_s: 0, group_interval_s: 2}",
                  notify_yaml.read_text(encoding="utf-8"), flags=re.M)
    notify_yaml.write_text(text + f"\ndelivery: {{give_up_after_s: {give_up_after_s}, retry_initial_s: 0.5, retry_max_s: 1}}\n",
                           encoding="utf-8")
    base = f"http://127.0.0.1:{receivers.port}"
    channels = {
        "SOC_NOTIFY_FLOOD_DUTY_URL": f"{base}/robot/send?access_token=robot",
        "SOC_NOTIFY_FLOOD_DUTY_SECRET": DINGTALK_SECRET,
        "SOC_NOTIFY_CITY_MANAGEMENT_URL": f"{base}/cgi-bin/webhook/send?key=robot-key",
        "SOC_NOTIFY_OPS_CENTRE_URL": f"{base}/hook",
        "SOC_NOTIFY_OPS_CENTRE_SECRET": WEBHOOK_SECRET,
        "SOC_NOTIFY_TRAFFIC_POLICE_URL": f"http://127.0.0.1:{closed_port()}/open-apis/bot/v2/hook/x",
        "SOC_NOTIFY_TRAFFIC_POLICE_SECRET": "demo",
        **{m.phone_env: member_phone(i) for i, m in enumerate(CONFIG.district.duty.members.values())},
    }
    with running_pipeline(work_dir / "stack", config_dir=config_dir, **channels, **env) as running:
        yield running


@pytest.fixture(scope="module")
def notified(tmp_path_factory) -> Iterator[tuple[Pipeline, Receivers]]:
    receivers = Receivers()
    try:
        with notifying_pipeline(tmp_path_factory.mktemp("notify"), receivers) as running:
            yield running, receivers
    finally:
        receivers.stop()


def officer_phone_at(at: datetime) -> str:
    on = duty.on_duty(CONFIG.district, at)
    members = list(CONFIG.district.duty.members)
    return member_phone(members.index(on["officer"].member_id))


def test_a_red_flood_reading_reaches_the_flood_robot_within_5_s_with_the_officer_mentioned(notified):
    pipeline, receivers = notified
    build = Builder(CONFIG, "notify-red")
    # Warm up: the worker's first fetches on a fresh stack are slower than its steady state.
    pipeline.send("soc.raw.flood", build.flood(station_id="WL-warmup", value=3.5))
    warmup = poll(lambda: pipeline.tickets_where(lambda t: t.source_ref.startswith("WL-warmup")), 60,
                  "the warm-up ticket")[0]
    # Its own message first: otherwise a slow machine's notifier folds both into one digest (等 2 条工单通知).
    poll(lambda: any(warmup.ticket_id in m["markdown"]["text"] for m in receivers.accepted["dingtalk"]), 60,
         "the warm-up ticket at the flood robot")
    sent = time.monotonic()
    pipeline.send("soc.raw.flood", build.flood(value=4.6))  # over the danger level: red

    def at_the_robot():
        tickets = pipeline.tickets_where(lambda t: t.source_ref.startswith("WL-notify-red"))
        return tickets and next(((tickets[0], m) for m in receivers.accepted["dingtalk"]
                                 if tickets[0].ticket_id in m["markdown"]["text"]), None)

    ticket, message = poll(at_the_robot, 5, "the red ticket at the flood robot")
    assert time.monotonic() - sent < 5
    assert message["markdown"]["title"].startswith("【红色I级·派遣】")
    assert message["at"]["atMobiles"] == [officer_phone_at(ticket.dispatched_at)]
    assert f"#ticket={ticket.ticket_id}" in message["markdown"]["text"]

    def logged() -> bool:   # written once the robot has answered, a moment after it took the message
        status, body = pipeline.get(f"/api/notifications?ticket_id={ticket.ticket_id}", "ops_centre")
        assert status == 200
        return ("flood_duty", "delivered") in {(e["channel"], e["result"]) for e in body["entries"]}

    poll(logged, 10, "the delivery in the notification log")
    status, detail = pipeline.get(f"/api/tickets/{ticket.ticket_id}", "flood_control")
    assert status == 200 and any(e["channel"] == "flood_duty" for e in detail["notifications"])
    status, _ = pipeline.get(f"/api/notifications?ticket_id={ticket.ticket_id}", "traffic_police")
    assert status == 404


def test_a_dead_receiver_ends_in_the_dead_letter_topic_and_the_metric(notified):
    pipeline, _ = notified
    build = Builder(CONFIG, "notify-dead")
    pipeline.send("soc.raw.traffic", build.traffic(lanes_blocked=2, injuries=1))

    def dead_letter():
        for record in pipeline.read_topic("soc.deadletter"):
            letter = json.loads(record.value)
            if letter["error_type"] == "notification_undeliverable" and "notify-dead" in (letter["raw_text"] or ""):
                return letter
        return None

    letter = poll(dead_letter, 60, "the undeliverable notification in soc.deadletter", interval=1)
    assert letter["message"].startswith("channel traffic_police (feishu): ")
    metrics = urllib.request.urlopen(f"{pipeline.worker.url}/metrics", timeout=10).read().decode()
    assert re.search(r'soc_notifications_total\{channel_type="feishu",event="dispatched",result="dead"\} [1-9]', metrics)


def test_no_phone_number_from_a_payload_appears_in_any_body(notified):
    pipeline, receivers = notified
    build = Builder(CONFIG, "notify-phone")
    report = build.city(description=f"井盖丢失，请回电{CITIZEN}或0755-86001234", category="manhole_cover_missing")
    pipeline.send("soc.raw.city", report)
    poll(lambda: any(report["case_no"] in json.dumps(b, ensure_ascii=False) for b in receivers.accepted["webhook"]),
         30, "the 12345 case at the ops centre webhook")
    for raw in receivers.raw:
        digits = re.sub(r"\D", "", raw.decode("utf-8", "replace"))
        assert CITIZEN not in digits and "86001234" not in digits
    assert any("138****8000" in raw.decode() for raw in receivers.raw)


@pytest.mark.parametrize("query, status, error", [
    ("since=yesterday", 400, "since must be an RFC 3339 time, e.g. 2026-12-01T08:30:00+08:00"),
    ("since=2026-12-01T08:30:00", 400, "since needs a UTC offset"),
    ("limit=%C2%B2", 400, "limit must be an integer from 0 to 1000"),
    ("limit=5000", 400, "limit must be an integer from 0 to 1000"),
    ("who=me", 400, "unknown parameter(s): who"),
])
def test_bad_notification_log_queries_get_a_json_4xx(notified, query, status, error):
    pipeline, _ = notified
    assert pipeline.get(f"/api/notifications?{query}", "ops_centre") == (status, {"error": error})


def test_the_notification_log_takes_an_unencoded_offset_and_keeps_departments_apart(notified):
    pipeline, _ = notified
    status, body = pipeline.get("/api/notifications?since=2026-01-01T00:00:00+08:00", "ops_centre")
    assert status == 200 and body["since"] == "2026-01-01T00:00:00+08:00"
    status, own = pipeline.get("/api/notifications?since=2026-01-01T00:00:00%2B08:00", "traffic_police")
    assert status == 200
    tickets = {e["ticket_id"] for e in own["entries"]}
    assert all(pipeline.ticket(t).department == "traffic_police" or "traffic_police" in pipeline.ticket(t).watchers
               for t in tickets)
