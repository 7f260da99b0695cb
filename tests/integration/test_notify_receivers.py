"""Real loopback receivers check each built request the way the vendor would, then a real SMTP server
receives a built email. Nothing is mocked: aiohttp servers and aiosmtpd on 127.0.0.1, ports chosen by the OS.

Not yet covered: STARTTLS (the sender will use it when the server offers it; aiosmtpd here offers none).
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import smtplib
from collections.abc import AsyncIterator
from email import message_from_bytes, policy
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiosmtpd.smtp import SMTP

from handlers import notify_channels as nc
from schemas.config import Config, load_config
from tests.unit.test_notify_channels import BASE, CITIZEN, OFFICER, make_ticket

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

DINGTALK_SECRET = "SEC0123456789abcdef"
FEISHU_SECRET = "demo"
WEBHOOK_SECRET = "ops-centre-key"
CONFIG_DIR = Path(__file__).resolve().parents[2] / "deploy" / "config"
RECEIVED = web.AppKey("received", asyncio.Queue)


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(CONFIG_DIR)


def _reject(code_field: str, code: int, text: str) -> web.Response:
    return web.json_response({code_field: code, ("errmsg" if code_field == "errcode" else "msg"): text})


async def dingtalk(request: web.Request) -> web.Response:
    """As oapi.dingtalk.com/robot/send checks: access_token, timestamp, sign = base64(HMAC(secret, ts\\nsecret))."""
    query = request.rel_url.query
    if query.get("access_token") != "robot-token":
        return _reject("errcode", 300001, "token is not exist")
    timestamp = query.get("timestamp", "")
    expected = base64.b64encode(hmac.new(DINGTALK_SECRET.encode(), f"{timestamp}\n{DINGTALK_SECRET}".encode(),
                                         hashlib.sha256).digest()).decode()
    if query.get("sign") != expected:
        return _reject("errcode", 310000, "sign not match")
    body = await request.json()
    if body.get("msgtype") != "markdown" or not {"title", "text"} <= set(body.get("markdown", {})):
        return _reject("errcode", 40035, "缺少参数 markdown")
    request.app[RECEIVED].put_nowait(("dingtalk", body))
    return web.json_response({"errcode": 0, "errmsg": "ok"})


async def wecom(request: web.Request) -> web.Response:
    if request.rel_url.query.get("key") != "robot-key":
        return _reject("errcode", 93000, "invalid webhook url")
    body = await request.json()
    if body.get("msgtype") == "markdown":
        content = body["markdown"].get("content", "")
        if len(content.encode("utf-8")) > 4096:
            return _reject("errcode", 40058, "markdown.content exceed max length 4096")
    elif body.get("msgtype") != "text":
        return _reject("errcode", 40008, "invalid message type")
    request.app[RECEIVED].put_nowait(("wecom", body))
    return web.json_response({"errcode": 0, "errmsg": "ok"})


async def feishu(request: web.Request) -> web.Response:
    body = await request.json()
    timestamp = body.get("timestamp", "")
    expected = base64.b64encode(hmac.new(f"{timestamp}\n{FEISHU_SECRET}".encode(), b"",
                                         hashlib.sha256).digest()).decode()
    if body.get("sign") != expected:
        return _reject("code", 19021, "sign match fail or timestamp is not within one hour from current time")
    if body.get("msg_type") != "post" or "zh_cn" not in body.get("content", {}).get("post", {}):
        return _reject("code", 9499, "Bad Request")
    request.app[RECEIVED].put_nowait(("feishu", body))
    return web.json_response({"code": 0, "msg": "success", "data": {}})


async def webhook(request: web.Request) -> web.Response:
    raw = await request.read()
    expected = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), raw, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(request.headers.get("X-SOC-Signature", ""), expected):
        return web.Response(status=401, text="bad signature")
    request.app[RECEIVED].put_nowait(("webhook", json.loads(raw)))
    return web.Response(status=204)


@pytest.fixture
async def receivers() -> AsyncIterator[tuple[str, asyncio.Queue]]:
    app = web.Application()
    app[RECEIVED] = asyncio.Queue()
    app.router.add_post("/robot/send", dingtalk)
    app.router.add_post("/cgi-bin/webhook/send", wecom)
    app.router.add_post("/open-apis/bot/v2/hook/bot-id", feishu)
    app.router.add_post("/hook", webhook)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}", app[RECEIVED]
    finally:
        await runner.cleanup()


async def send(request: nc.HttpRequest) -> tuple[int, bytes]:
    async with aiohttp.ClientSession() as session:
        async with session.request(request.method, request.url, headers=request.headers, data=request.body,
                                   timeout=aiohttp.ClientTimeout(total=5)) as response:
            return response.status, await response.read()


@pytest.fixture
def message(config) -> nc.Message:
    return nc.render(make_ticket(), "dispatched", config.district, BASE, "dispatch")


def _no_citizen_phone(body: dict) -> None:
    assert CITIZEN not in json.dumps(body, ensure_ascii=False)


async def test_dingtalk_robot_accepts_the_signed_markdown(receivers, message):
    base, received = receivers
    request = nc.dingtalk_request(message, url=f"{base}/robot/send?access_token=robot-token", secret=DINGTALK_SECRET,
                                  timestamp_ms=1700000000000, mobiles=[OFFICER])
    status, answer = await send(request)
    assert nc.delivery_failed("dingtalk", status, answer) is None
    kind, body = await asyncio.wait_for(received.get(), 5)
    assert kind == "dingtalk" and body["at"]["atMobiles"] == [OFFICER]
    _no_citizen_phone({"text": body["markdown"]})


async def test_dingtalk_robot_refuses_a_wrong_secret_and_the_check_says_why(receivers, message):
    base, received = receivers
    request = nc.dingtalk_request(message, url=f"{base}/robot/send?access_token=robot-token", secret="SECwrong",
                                  timestamp_ms=1700000000000)
    status, answer = await send(request)
    assert nc.delivery_failed("dingtalk", status, answer) == "dingtalk error 310000: sign not match"
    assert received.empty()


async def test_wecom_robot_accepts_long_chinese_markdown_and_the_mention(receivers, config):
    base, received = receivers
    long = nc.render(make_ticket(description="望海路积水" * 2000), "escalated", config.district, BASE, "dispatch")
    requests = nc.wecom_requests(long, url=f"{base}/cgi-bin/webhook/send?key=robot-key", mobiles=[OFFICER])
    for request in requests:
        status, answer = await send(request)
        assert nc.delivery_failed("wecom", status, answer) is None
    (_, markdown), (_, text) = [await asyncio.wait_for(received.get(), 5) for _ in requests]
    assert markdown["msgtype"] == "markdown" and markdown["markdown"]["content"].endswith(nc.TRUNCATED)
    assert text["text"]["mentioned_mobile_list"] == [OFFICER]


async def test_feishu_bot_accepts_the_signed_post(receivers, message):
    base, received = receivers
    request = nc.feishu_request(message, url=f"{base}/open-apis/bot/v2/hook/bot-id", secret=FEISHU_SECRET,
                                timestamp_s=1599360473)
    status, answer = await send(request)
    assert nc.delivery_failed("feishu", status, answer) is None
    kind, body = await asyncio.wait_for(received.get(), 5)
    assert body["sign"] == "l1N0gAcBjdwBvGm1xMjOF0XSyaLRpR7tuO5dHfhAYc8="
    _no_citizen_phone(body)


async def test_feishu_bot_refuses_a_wrong_secret(receivers, message):
    base, _ = receivers
    request = nc.feishu_request(message, url=f"{base}/open-apis/bot/v2/hook/bot-id", secret="other",
                                timestamp_s=1599360473)
    status, answer = await send(request)
    assert nc.delivery_failed("feishu", status, answer).startswith("feishu error 19021:")


async def test_webhook_receiver_verifies_the_body_signature(receivers, message):
    base, received = receivers
    ticket = make_ticket()
    good = nc.webhook_request(message, [(message, nc.ticket_record(ticket))], url=f"{base}/hook", secret=WEBHOOK_SECRET)
    status, answer = await send(good)
    assert nc.delivery_failed("webhook", status, answer) is None
    kind, body = await asyncio.wait_for(received.get(), 5)
    assert (body["version"], body["id"]) == ("1", "T-20260512-0001:dispatched:dispatch")
    _no_citizen_phone(body)
    forged = nc.webhook_request(message, [(message, nc.ticket_record(ticket))], url=f"{base}/hook", secret="guess")
    status, answer = await send(forged)
    assert nc.delivery_failed("webhook", status, answer) == "HTTP 401"


class Inbox:
    def __init__(self) -> None:
        self.messages: asyncio.Queue = asyncio.Queue()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        self.messages.put_nowait(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture
async def smtp_server() -> AsyncIterator[tuple[str, int, Inbox]]:
    inbox = Inbox()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(inbox, hostname="soc-test"), "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    try:
        yield host, port, inbox
    finally:
        server.close()
        await server.wait_closed()


def _smtp_send(host: str, port: int, mail) -> None:
    with smtplib.SMTP(host, port, timeout=5) as client:
        client.ehlo()
        # STARTTLS when offered is the notifier's job (not built yet); this server offers none.
        assert not client.has_extn("starttls")
        client.send_message(mail)


async def test_smtp_server_receives_the_utf8_email(smtp_server, message):
    host, port, inbox = smtp_server
    mail = nc.email_message(message, sender="soc-notify@haiwan.example.gov.cn",
                            recipients=["leadership@haiwan.example.gov.cn"])
    await asyncio.to_thread(_smtp_send, host, port, mail)
    envelope = await asyncio.wait_for(inbox.messages.get(), 5)
    assert envelope.mail_from == "soc-notify@haiwan.example.gov.cn"
    assert envelope.rcpt_tos == ["leadership@haiwan.example.gov.cn"]
    got = message_from_bytes(envelope.original_content, policy=policy.default)
    assert got["Subject"] == message.title
    text = got.get_content()
    assert "责任部门：街道三防办" in text and "签收期限：2026-05-12 09:45" in text
    assert CITIZEN not in text
