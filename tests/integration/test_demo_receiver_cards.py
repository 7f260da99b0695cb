"""`soc dev --demo-receiver` as the DingTalk app: a red ticket's card shows its buttons on the demo page, and
签收 pressed there reaches the worker as DingTalk's signed, encrypted callback, accepts the ticket as the bound
clerk, and the card on the page then says who took it, without buttons."""
from __future__ import annotations

import asyncio
import os
import threading
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import pytest
from aiohttp import web

from schemas.accounts import UserRole
from streams.ops import demo_receiver as demo
from tests.support import poll, running_pipeline

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def receiver():
    robot = demo.DemoRobot()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(robot.app())
    ready, where = threading.Event(), {}

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0).start())
        where["url"] = "http://%s:%d" % runner.addresses[0][:2]
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        yield robot, where["url"]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, receiver):
    robot, url = receiver
    log_dir = Path(os.environ.get("SOC_TEST_LOG_DIR") or tmp_path_factory.mktemp("demo-cards"))
    with running_pipeline(log_dir, SOC_DINGTALK_APP_KEY=demo.DEMO_APP_KEY, SOC_DINGTALK_APP_SECRET=demo.DEMO_APP_SECRET,
                          SOC_DINGTALK_CALLBACK_TOKEN=demo.DEMO_CALLBACK_TOKEN,
                          SOC_DINGTALK_CALLBACK_AES_KEY=demo.DEMO_AES_KEY, SOC_DINGTALK_API_URL=url,
                          SOC_NOTIFY_DUTY_ROOM_CARD_CONVERSATION=demo.DEMO_CONVERSATION) as running:
        robot.worker_url = running.worker.url
        yield running


def page(url: str) -> str:
    with urllib.request.urlopen(url + "/", timeout=10) as response:
        return response.read().decode()


def test_a_red_ticket_is_accepted_from_the_demo_card(stack, receiver, build):
    robot, url = receiver
    stack.send("soc.raw.flood", build.flood(value=4.6))  # over the danger level: a red ticket
    ticket = poll(lambda: stack.tickets_where(lambda t: t.source_ref.startswith(f"WL-{build.unique}")), 30,
                  "the red ticket")[0]
    track_id = poll(lambda: [k for k, c in robot.cards.items() if c["params"]["ticket_id"] == ticket.ticket_id], 10,
                    "the card at the demo receiver")[0]
    shown = page(url)
    assert "<button name=action value=accept>签收</button>" in shown and ">已知悉</button>" in shown and ">查看</a>" in shown

    admin = stack.user_token(stack.add_user(f"admin.{uuid.uuid4().hex[:6]}", "ops_centre", UserRole.admin))
    clerk = stack.add_user(f"flood.{build.unique}", ticket.department, UserRole.clerk, name="王工")
    status, _ = stack.request("PUT", f"/api/chat-bindings/dingtalk/wang{build.unique}", token=admin,
                              body={"user_id": clerk})
    assert status == 200
    form = urllib.parse.urlencode({"card": track_id, "action": "accept", "user": f"wang{build.unique}"}).encode()
    with urllib.request.urlopen(urllib.request.Request(url + "/press", data=form, method="POST"), timeout=15) as r:
        assert r.status == 200  # the 303 back to the page, followed

    status, body = stack.get(f"/api/tickets/{ticket.ticket_id}", "ops_centre")
    assert status == 200 and body["status"] == "accepted"
    assert [h["user"]["user_id"] for h in body["history"] if h["action"] == "accept"] == [clerk]
    taken = poll(lambda: robot.cards[track_id]["params"]["taken_by"], 10, "the card updated in place")
    assert taken.startswith("王工（") and taken.endswith("签收")
    after = page(url)
    assert "已处理" in after and taken in after
