"""`soc dev --demo-receiver`: a local DingTalk-format robot and app that list what they received on a page.

It checks what oapi.dingtalk.com/robot/send checks (access_token, the 加签 timestamp and sign, a markdown
or text body) and answers as DingTalk does, so pointing the flood_duty channel at it exercises the
notifier end to end without a real robot. The duty room channel (every red ticket) pointed at it:

    SOC_NOTIFY_DUTY_ROOM_URL=http://127.0.0.1:6070/robot/send?access_token=demo
    SOC_NOTIFY_DUTY_ROOM_SECRET=SECdemo0123456789

It is also the DingTalk app's API (access token, interactive card send and update, as api.dingtalk.com
checks them) for the duty_room_card channel: its cards show 签收/已知悉/查看 on the page, and a button pressed
there is sent to the worker as DingTalk sends a card callback, signed and encrypted, as the DingTalk user
typed beside it (bound to an account by an admin: PUT /api/chat-bindings/dingtalk/<userId>).
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
import json
import os
import re
import time
import uuid
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from handlers import chat_cards as cc

DEMO_TOKEN = "demo"
DEMO_SECRET = "SECdemo0123456789"
# The demo DingTalk app (its settings for the worker are printed at start).
DEMO_APP_KEY = "dingdemoappkey"
DEMO_APP_SECRET = "demo-app-secret"
DEMO_CALLBACK_TOKEN = "demo-callback-token"
DEMO_AES_KEY = "demo0aes0key0demo0aes0key0demo0aes0key0abcd"  # 43 characters, as DingTalk's aes_key
DEMO_CONVERSATION = "cidDemoDutyRoom=="
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


def _bold(markdown: str) -> str:
    """The card's markdown as DingTalk shows its bold labels and line breaks (all else escaped)."""
    return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html.escape(markdown)).replace("\n\n", "<br>")


@dataclass
class DemoRobot:
    secret: str = DEMO_SECRET
    token: str = DEMO_TOKEN
    received: list[dict] = field(default_factory=list)
    # The demo app: its cards by outTrackId, the access token it gave out, and where the worker takes callbacks.
    worker_url: str = "http://127.0.0.1:6066"
    cards: dict[str, dict] = field(default_factory=dict)
    access_token: str = field(default_factory=lambda: "demo-" + uuid.uuid4().hex)
    notice: str = ""

    @property
    def crypto(self) -> cc.CallbackCrypto:
        return cc.CallbackCrypto(DEMO_CALLBACK_TOKEN, DEMO_AES_KEY, DEMO_APP_KEY)

    async def app_token(self, request: web.Request) -> web.Response:
        body = await request.json()
        if (body.get("appKey"), body.get("appSecret")) != (DEMO_APP_KEY, DEMO_APP_SECRET):
            return web.json_response({"code": "invalidClientIdOrSecret", "message": "无效的clientId或者clientSecret"},
                                     status=400)
        return web.json_response({"accessToken": self.access_token, "expireIn": 7200})

    def _refused(self, request: web.Request) -> web.Response | None:
        if request.headers.get("x-acs-dingtalk-access-token") != self.access_token:
            return web.json_response({"code": "InvalidAuthentication", "message": "不合法的access_token"}, status=401)
        return None

    async def send_card(self, request: web.Request) -> web.Response:
        body = await request.json()
        params = (body.get("cardData") or {}).get("cardParamMap")
        if refused := self._refused(request):
            return refused
        if not body.get("outTrackId") or not isinstance(params, dict):
            return web.json_response({"code": "param.error", "message": "outTrackId and cardData are required"},
                                     status=400)
        self.cards[body["outTrackId"]] = {"received_at": time.strftime("%Y-%m-%d %H:%M:%S"), "params": params}
        return web.json_response({"success": True, "result": {"processQueryKey": uuid.uuid4().hex}})

    async def update_card(self, request: web.Request) -> web.Response:
        body = await request.json()
        if refused := self._refused(request):
            return refused
        card = self.cards.get(body.get("outTrackId", ""))
        if card is None:
            return web.json_response({"code": "card.notExist", "message": "卡片不存在"}, status=400)
        card["params"] = {**card["params"], **((body.get("cardData") or {}).get("cardParamMap") or {})}
        return web.json_response({"success": True, "result": True})

    async def press(self, request: web.Request) -> web.Response:
        """A button pressed on the page: sent to the worker as DingTalk's signed, encrypted card callback."""
        form = await request.post()
        card = self.cards.get(str(form.get("card", "")))
        action, user = str(form.get("action", "")), str(form.get("user", "")).strip()
        if card is None or action not in cc.CardAction.__members__ or not user:
            raise web.HTTPBadRequest(text="a card, a button and a DingTalk userId are needed")
        event = {"outTrackId": form["card"], "userId": user, "corpId": "dingdemocorp",
                 "content": json.dumps({"cardPrivateData": {"actionIds": [action],
                                                            "params": {"ticket_id": card["params"]["ticket_id"]}}})}
        timestamp, nonce = str(int(time.time() * 1000)), uuid.uuid4().hex[:8]
        encrypt = self.crypto.encrypt(json.dumps(event, ensure_ascii=False), os.urandom(16))
        url = (f"{self.worker_url.rstrip('/')}/api/chat/dingtalk/callback?signature="
               f"{self.crypto.signature(timestamp, nonce, encrypt)}&timestamp={timestamp}&nonce={nonce}")
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
                async with session.post(url, json={"encrypt": encrypt}) as response:
                    answer = await response.json(content_type=None)
            self.notice = ("已处理" if response.status == 200 else f"钉钉错误 {answer.get('errcode')}：{answer.get('errmsg')}")
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            self.notice = f"工作进程不可达：{type(exc).__name__}"
        raise web.HTTPSeeOther("/")

    async def send(self, request: web.Request) -> web.Response:
        answer, message = check_dingtalk(request.rel_url.query, await request.read(), self.secret, self.token,
                                         int(time.time() * 1000))
        if message is not None:
            self.received.append({"received_at": time.strftime("%Y-%m-%d %H:%M:%S"), "message": message})
        return web.json_response(answer)

    def _card_rows(self) -> list[str]:
        rows = []
        for track_id, card in reversed(list(self.cards.items())[-100:]):
            p = card["params"]
            if p.get("buttons") == "hidden":
                actions = f"<p class=taken>{html.escape(p.get('taken_by', ''))}</p>"
            else:
                buttons = "".join(f"<button name=action value={a.value}>{cc.ACTION_TEXT[a]}</button>" for a in cc.CardAction)
                actions = (f"<form method=post action=/press><input type=hidden name=card value=\"{html.escape(track_id)}\">"
                           f"钉钉 userId <input name=user required size=14> {buttons}</form>")
            rows.append(f"<article class=card><header>{html.escape(card['received_at'])} · 互动卡片</header>"
                        f"<h3>{html.escape(p.get('title', ''))}</h3><p>{_bold(p.get('markdown', ''))}</p>"
                        f"{actions}<a href=\"{html.escape(p.get('link', ''))}\">查看</a></article>")
        return rows

    async def page(self, request: web.Request) -> web.Response:
        rows = self._card_rows()
        for item in reversed(self.received[-200:]):
            body = item["message"]
            text = body.get("markdown", {}).get("text") or body.get("text", {}).get("content", "")
            at = ", ".join(body.get("at", {}).get("atMobiles", []))
            rows.append(f"<article><header>{html.escape(item['received_at'])}"
                        f"{' · @' + html.escape(at) if at else ''}</header><pre>{html.escape(text)}</pre></article>")
        page = ("<!doctype html><meta charset=utf-8><meta http-equiv=refresh content=3>"
                "<title>演示钉钉机器人</title><style>body{font:15px sans-serif;margin:2em;max-width:60em}"
                "article{border:1px solid #ccc;border-radius:6px;margin:1em 0;padding:.5em 1em}"
                "header{color:#666}pre{white-space:pre-wrap}.card{border-color:#E02020}.taken{color:#0a7d2c}</style>"
                f"<h1>演示钉钉机器人 · 已收到 {len(self.received)} 条消息、{len(self.cards)} 张卡片</h1>"
                + (f"<p><b>{html.escape(self.notice)}</b></p>" if self.notice else "") + "".join(rows))
        return web.Response(text=page, content_type="text/html")

    async def listing(self, request: web.Request) -> web.Response:
        return web.json_response(self.received)

    async def card_listing(self, request: web.Request) -> web.Response:
        return web.json_response(self.cards)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/robot/send", self.send)
        app.router.add_get("/", self.page)
        app.router.add_get("/received.json", self.listing)
        app.router.add_post("/v1.0/oauth2/accessToken", self.app_token)
        app.router.add_post("/v1.0/im/interactiveCards/send", self.send_card)
        app.router.add_put("/v1.0/im/interactiveCards", self.update_card)
        app.router.add_post("/press", self.press)
        app.router.add_get("/cards.json", self.card_listing)
        return app


async def serve(host: str, port: int, worker_url: str = "http://127.0.0.1:6066") -> None:
    robot = DemoRobot(worker_url=worker_url)
    runner = web.AppRunner(robot.app())
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    print(f"demo DingTalk robot: http://{host}:{port}/ lists what it receives. Start the stack with:\n"
          f"  export SOC_NOTIFY_DUTY_ROOM_URL='http://{host}:{port}/robot/send?access_token={DEMO_TOKEN}'\n"
          f"  export SOC_NOTIFY_DUTY_ROOM_SECRET='{DEMO_SECRET}'\n"
          f"  export SOC_NOTIFY_DUTY_ROOM_CARD_CONVERSATION='{DEMO_CONVERSATION}' SOC_DINGTALK_API_URL='http://{host}:{port}'\n"
          f"  export SOC_DINGTALK_APP_KEY='{DEMO_APP_KEY}' SOC_DINGTALK_APP_SECRET='{DEMO_APP_SECRET}'\n"
          f"  export SOC_DINGTALK_CALLBACK_TOKEN='{DEMO_CALLBACK_TOKEN}' SOC_DINGTALK_CALLBACK_AES_KEY='{DEMO_AES_KEY}'\n"
          f"  make run", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
