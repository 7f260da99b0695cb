"""`soc dev --demo-receiver`: a local DingTalk-format robot that lists what it received on a page.

It checks what oapi.dingtalk.com/robot/send checks (access_token, the 加签 timestamp and sign, a markdown
or text body) and answers as DingTalk does, so pointing the flood_duty channel at it exercises the
notifier end to end without a real robot. The duty room channel (every red ticket) pointed at it:

    SOC_NOTIFY_DUTY_ROOM_URL=http://127.0.0.1:6070/robot/send?access_token=demo
    SOC_NOTIFY_DUTY_ROOM_SECRET=SECdemo0123456789
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
import json
import time
from dataclasses import dataclass, field

from aiohttp import web

DEMO_TOKEN = "demo"
DEMO_SECRET = "SECdemo0123456789"
# DingTalk refuses a timestamp more than an hour away from its clock.
MAX_SKEW_MS = 3600 * 1000


def check_dingtalk(query, body: bytes, secret: str, token: str, now_ms: int) -> tuple[dict, dict | None]:
    """(DingTalk's answer, the message when accepted), as the robot endpoint decides."""
    if query.get("access_token") != token:
        return {"errcode": 300001, "errmsg": "token is not exist"}, None
    timestamp = query.get("timestamp", "")
    if not timestamp.isdigit() or abs(int(timestamp) - now_ms) > MAX_SKEW_MS:
        return {"errcode": 310000, "errmsg": "timestamp is invalid"}, None
    expected = base64.b64encode(hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(),
                                         hashlib.sha256).digest()).decode()
    if not hmac.compare_digest(query.get("sign", ""), expected):
        return {"errcode": 310000, "errmsg": "sign not match"}, None
    try:
        message = json.loads(body)
    except ValueError:
        return {"errcode": 40035, "errmsg": "body is not JSON"}, None
    kind = message.get("msgtype") if isinstance(message, dict) else None
    if kind == "markdown" and {"title", "text"} <= set(message.get("markdown") or {}):
        return {"errcode": 0, "errmsg": "ok"}, message
    if kind == "text" and "content" in (message.get("text") or {}):
        return {"errcode": 0, "errmsg": "ok"}, message
    return {"errcode": 40035, "errmsg": "缺少参数 markdown"}, None


@dataclass
class DemoRobot:
    secret: str = DEMO_SECRET
    token: str = DEMO_TOKEN
    received: list[dict] = field(default_factory=list)

    async def send(self, request: web.Request) -> web.Response:
        answer, message = check_dingtalk(request.rel_url.query, await request.read(), self.secret, self.token,
                                         int(time.time() * 1000))
        if message is not None:
            self.received.append({"received_at": time.strftime("%Y-%m-%d %H:%M:%S"), "message": message})
        return web.json_response(answer)

    async def page(self, request: web.Request) -> web.Response:
        rows = []
        for item in reversed(self.received[-200:]):
            body = item["message"]
            text = body.get("markdown", {}).get("text") or body.get("text", {}).get("content", "")
            at = ", ".join(body.get("at", {}).get("atMobiles", []))
            rows.append(f"<article><header>{html.escape(item['received_at'])}"
                        f"{' · @' + html.escape(at) if at else ''}</header><pre>{html.escape(text)}</pre></article>")
        page = ("<!doctype html><meta charset=utf-8><meta http-equiv=refresh content=3>"
                "<title>演示钉钉机器人</title><style>body{font:15px sans-serif;margin:2em;max-width:60em}"
                "article{border:1px solid #ccc;border-radius:6px;margin:1em 0;padding:.5em 1em}"
                "header{color:#666}pre{white-space:pre-wrap}</style>"
                f"<h1>演示钉钉机器人 · 已收到 {len(self.received)} 条</h1>" + "".join(rows))
        return web.Response(text=page, content_type="text/html")

    async def listing(self, request: web.Request) -> web.Response:
        return web.json_response(self.received)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/robot/send", self.send)
        app.router.add_get("/", self.page)
        app.router.add_get("/received.json", self.listing)
        return app


async def serve(host: str, port: int) -> None:
    robot = DemoRobot()
    runner = web.AppRunner(robot.app())
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    print(f"demo DingTalk robot: http://{host}:{port}/ lists what it receives. Start the stack with:\n"
          f"  export SOC_NOTIFY_DUTY_ROOM_URL='http://{host}:{port}/robot/send?access_token={DEMO_TOKEN}'\n"
          f"  export SOC_NOTIFY_DUTY_ROOM_SECRET='{DEMO_SECRET}'\n"
          f"  make run", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
