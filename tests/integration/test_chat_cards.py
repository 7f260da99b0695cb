"""Acting from a DingTalk card, over real HTTP: a local DingTalk API (its access token, card send and card
update endpoints, checking the token as DingTalk does) receives the card of a red ticket from the notifier,
and a caller that signs and encrypts the card callback as DingTalk does posts the press to the worker. A press
accepts the ticket as the bound person and the card is updated in place; the same callback again changes
nothing; a forged signature and an unbound user get DingTalk's error answer."""
from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from handlers import chat_cards as cc
from schemas.accounts import UserRole
from tests.integration.test_api import open_ticket
from tests.support import REPO_ROOT, marker, poll, running_pipeline

pytestmark = pytest.mark.integration

APP_KEY = "dingsocdemoappkey"
APP_SECRET = "demo-app-secret"
TOKEN = "soc-callback-token"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters, as DingTalk makes them
ACCESS_TOKEN = "at-" + uuid.uuid4().hex
CONVERSATION = "cidDutyRoom0123456789=="
# The WeCom app (企业微信自建应用) and its callback.
CORP_ID = "wwsocdemocorp0001"
CORP_SECRET = "wecom-app-secret"
AGENT_ID = 1000002
WECOM_TOKEN = "socWeComToken"
WECOM_AES_KEY = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut"
WECOM_ACCESS_TOKEN = "wx-" + uuid.uuid4().hex
WECOM = cc.CallbackCrypto(WECOM_TOKEN, WECOM_AES_KEY, CORP_ID)
USERS = "chengguan01|chengguan02"
# The Feishu app (飞书自建应用) and its callback.
FEISHU_APP_ID = "cli_socdemo0001"
FEISHU_APP_SECRET = "feishu-app-secret"
FEISHU_TOKEN = "feishu-verification-token"
FEISHU_KEY = "feishu-encrypt-key"
FEISHU_ACCESS_TOKEN = "t-" + uuid.uuid4().hex
FEISHU = cc.FeishuCrypto(FEISHU_KEY, FEISHU_TOKEN)
CHAT_ID = "oc_trafficpolice0001"
CRYPTO = cc.CallbackCrypto(TOKEN, AES_KEY, APP_KEY)


class DingTalkApi:
    """api.dingtalk.com's token and card update endpoints, on a loop of their own in a thread."""

    def __init__(self) -> None:
        self.cards: list[dict] = []
        self.updates: list[dict] = []
        self.wecom_updates: list[dict] = []
        self.wecom_cards: list[dict] = []
        self.wecom_texts: list[dict] = []
        self.feishu_cards: list[dict] = []
        self.feishu_updates: list[tuple[str, dict]] = []
        self.loop = asyncio.new_event_loop()
        self.url = ""

    async def token(self, request: web.Request) -> web.Response:
        body = await request.json()
        if (body.get("appKey"), body.get("appSecret")) != (APP_KEY, APP_SECRET):
            return web.json_response({"code": "invalidClientIdOrSecret", "message": "无效的clientId或者clientSecret"},
                                     status=400)
        return web.json_response({"accessToken": ACCESS_TOKEN, "expireIn": 7200})

    async def send(self, request: web.Request) -> web.Response:
        if request.headers.get("x-acs-dingtalk-access-token") != ACCESS_TOKEN:
            return web.json_response({"code": "InvalidAuthentication", "message": "不合法的access_token"}, status=401)
        body = await request.json()
        params = body.get("cardData", {}).get("cardParamMap")
        if (not body.get("cardTemplateId") or body.get("openConversationId") != CONVERSATION
                or body.get("robotCode") != APP_KEY or not body.get("outTrackId") or not isinstance(params, dict)
                or not all(isinstance(v, str) for v in params.values())):
            return web.json_response({"code": "param.error", "message": "参数错误"}, status=400)
        self.cards.append(body)
        return web.json_response({"success": True, "result": {"processQueryKey": uuid.uuid4().hex}})

    async def update(self, request: web.Request) -> web.Response:
        if request.headers.get("x-acs-dingtalk-access-token") != ACCESS_TOKEN:
            return web.json_response({"code": "InvalidAuthentication", "message": "不合法的access_token"}, status=401)
        body = await request.json()
        if not body.get("outTrackId") or not isinstance(body.get("cardData", {}).get("cardParamMap"), dict):
            return web.json_response({"code": "param.error", "message": "outTrackId and cardData are required"},
                                     status=400)
        self.updates.append(body)
        return web.json_response({"success": True, "result": True})

    async def wecom_token(self, request: web.Request) -> web.Response:
        query = request.rel_url.query
        if (query.get("corpid"), query.get("corpsecret")) != (CORP_ID, CORP_SECRET):
            return web.json_response({"errcode": 40001, "errmsg": "invalid credential"})
        return web.json_response({"errcode": 0, "errmsg": "ok", "access_token": WECOM_ACCESS_TOKEN, "expires_in": 7200})

    async def wecom_send(self, request: web.Request) -> web.Response:
        if request.rel_url.query.get("access_token") != WECOM_ACCESS_TOKEN:
            return web.json_response({"errcode": 40014, "errmsg": "invalid access_token"})
        body = await request.json()
        if body.get("msgtype") == "text" and body.get("agentid") == AGENT_ID and body.get("touser") \
                and (body.get("text") or {}).get("content"):
            self.wecom_texts.append(body)
            return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": uuid.uuid4().hex})
        card = body.get("template_card") or {}
        if (body.get("msgtype") != "template_card" or body.get("agentid") != AGENT_ID or body.get("touser") != USERS
                or card.get("card_type") != "button_interaction" or not card.get("task_id")
                or not 1 <= len(card.get("button_list") or []) <= 6):
            return web.json_response({"errcode": 40008, "errmsg": "invalid message type"})
        self.wecom_cards.append(body)
        return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": uuid.uuid4().hex,
                                  "response_code": f"rc-{uuid.uuid4().hex}"})

    async def wecom_update(self, request: web.Request) -> web.Response:
        if request.rel_url.query.get("access_token") != WECOM_ACCESS_TOKEN:
            return web.json_response({"errcode": 40014, "errmsg": "invalid access_token"})
        body = await request.json()
        if body.get("agentid") != AGENT_ID or not body.get("response_code"):
            return web.json_response({"errcode": 40056, "errmsg": "invalid agentid"})
        if any(u["response_code"] == body["response_code"] for u in self.wecom_updates):
            return web.json_response({"errcode": 40165, "errmsg": "response_code has been used"})  # good once
        self.wecom_updates.append(body)
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    async def feishu_token(self, request: web.Request) -> web.Response:
        body = await request.json()
        if (body.get("app_id"), body.get("app_secret")) != (FEISHU_APP_ID, FEISHU_APP_SECRET):
            return web.json_response({"code": 10014, "msg": "app secret invalid"})
        return web.json_response({"code": 0, "msg": "ok", "tenant_access_token": FEISHU_ACCESS_TOKEN, "expire": 7200})

    def _feishu_refused(self, request: web.Request) -> web.Response | None:
        if request.headers.get("Authorization") != f"Bearer {FEISHU_ACCESS_TOKEN}":
            return web.json_response({"code": 99991663, "msg": "Invalid access token for authorization."}, status=400)
        return None

    async def feishu_send(self, request: web.Request) -> web.Response:
        if refused := self._feishu_refused(request):
            return refused
        body = await request.json()
        if (request.rel_url.query.get("receive_id_type") != "chat_id" or body.get("receive_id") != CHAT_ID
                or body.get("msg_type") != "interactive"):
            return web.json_response({"code": 230001, "msg": "invalid receive_id"}, status=400)
        card = json.loads(body["content"])
        message_id = f"om_{uuid.uuid4().hex}"
        self.feishu_cards.append({"message_id": message_id, "card": card})
        return web.json_response({"code": 0, "msg": "success", "data": {"message_id": message_id}})

    async def feishu_update(self, request: web.Request) -> web.Response:
        if refused := self._feishu_refused(request):
            return refused
        body = await request.json()
        self.feishu_updates.append((request.match_info["message_id"], json.loads(body["content"])))
        return web.json_response({"code": 0, "msg": "success", "data": {}})

    def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1.0/oauth2/accessToken", self.token)
        app.router.add_post("/v1.0/im/interactiveCards/send", self.send)
        app.router.add_put("/v1.0/im/interactiveCards", self.update)
        app.router.add_get("/cgi-bin/gettoken", self.wecom_token)
        app.router.add_post("/cgi-bin/message/update_template_card", self.wecom_update)
        app.router.add_post("/cgi-bin/message/send", self.wecom_send)
        app.router.add_post("/open-apis/auth/v3/tenant_access_token/internal", self.feishu_token)
        app.router.add_post("/open-apis/im/v1/messages", self.feishu_send)
        app.router.add_patch("/open-apis/im/v1/messages/{message_id}", self.feishu_update)
        runner = web.AppRunner(app)
        ready = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0)
            self.loop.run_until_complete(site.start())
            host, port = runner.addresses[0][:2]
            self.url = f"http://{host}:{port}"
            ready.set()
            self.loop.run_forever()
            self.loop.run_until_complete(runner.cleanup())

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert ready.wait(10)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def dingtalk() -> Iterator[DingTalkApi]:
    api = DingTalkApi()
    api.start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory, dingtalk):
    log_dir = Path(os.environ.get("SOC_TEST_LOG_DIR") or tmp_path_factory.mktemp("chat-stack"))
    # notify.yaml with an orange ticket's wait cut from 30 s to 1 s.
    config_dir = tmp_path_factory.mktemp("chat-config") / "config"
    shutil.copytree(REPO_ROOT / "deploy" / "config", config_dir)
    notify_yaml = config_dir / "notify.yaml"
    text, found = re.subn(r"^grouping: .*$", "grouping: {group_wait_s: 1, group_wait_red_s: 0, group_interval_s: 2}",
                          notify_yaml.read_text(encoding="utf-8"), flags=re.M)
    assert found
    notify_yaml.write_text(text, encoding="utf-8")
    with running_pipeline(log_dir, config_dir, SOC_DINGTALK_APP_KEY=APP_KEY, SOC_DINGTALK_APP_SECRET=APP_SECRET,
                          SOC_DINGTALK_CALLBACK_TOKEN=TOKEN, SOC_DINGTALK_CALLBACK_AES_KEY=AES_KEY,
                          SOC_DINGTALK_API_URL=dingtalk.url, SOC_NOTIFY_DUTY_ROOM_CARD_CONVERSATION=CONVERSATION,
                          SOC_WECOM_CORP_ID=CORP_ID, SOC_WECOM_CORP_SECRET=CORP_SECRET, SOC_WECOM_AGENT_ID=str(AGENT_ID),
                          SOC_WECOM_CALLBACK_TOKEN=WECOM_TOKEN, SOC_WECOM_CALLBACK_AES_KEY=WECOM_AES_KEY,
                          SOC_WECOM_API_URL=dingtalk.url, SOC_NOTIFY_CITY_MANAGEMENT_CARD_USERS=USERS,
                          SOC_FEISHU_APP_ID=FEISHU_APP_ID, SOC_FEISHU_APP_SECRET=FEISHU_APP_SECRET,
                          SOC_FEISHU_VERIFICATION_TOKEN=FEISHU_TOKEN, SOC_FEISHU_ENCRYPT_KEY=FEISHU_KEY,
                          SOC_FEISHU_API_URL=dingtalk.url, SOC_NOTIFY_TRAFFIC_POLICE_CARD_CHAT=CHAT_ID) as running:
        yield running


@pytest.fixture(scope="module")
def admin(stack) -> str:
    return stack.user_token(stack.add_user(f"admin.{uuid.uuid4().hex[:6]}", "ops_centre", UserRole.admin))


def press(ticket_id: str, user_id: str, action: str = "accept", track: str | None = None) -> dict:
    return {"outTrackId": track or f"soc-{uuid.uuid4().hex}", "userId": user_id, "corpId": "dingcorp",
            "content": json.dumps({"cardPrivateData": {"actionIds": [action], "params": {"ticket_id": ticket_id}}})}


def callback(event: dict, crypto: cc.CallbackCrypto = CRYPTO, signature: str | None = None) -> tuple[str, bytes]:
    """The request DingTalk makes: signature, timestamp (ms) and nonce in the query, {"encrypt"} as the body."""
    timestamp, nonce = str(int(time.time() * 1000)), marker()
    encrypt = crypto.encrypt(json.dumps(event, ensure_ascii=False), os.urandom(16))
    signature = signature or crypto.signature(timestamp, nonce, encrypt)
    return (f"/api/chat/dingtalk/callback?signature={signature}&timestamp={timestamp}&nonce={nonce}",
            json.dumps({"encrypt": encrypt}).encode())


def accepts(stack, ticket_id: str) -> list[dict]:
    status, ticket = stack.get(f"/api/tickets/{ticket_id}", "ops_centre")
    assert status == 200, ticket
    return [h for h in ticket["history"] if h["action"] == "accept"]


def bound_clerk(stack, admin: str, unique: str, department: str = "traffic_police") -> tuple[str, str]:
    """(DingTalk userId, account) of a department's clerk bound by the admin through the API."""
    clerk = stack.add_user(f"clerk.{unique}", department, UserRole.clerk, name=f"李警官{unique[:2]}")
    chat_user = f"manager{unique}"
    status, body = stack.request("PUT", f"/api/chat-bindings/dingtalk/{chat_user}", token=admin,
                                 body={"user_id": clerk})
    assert status == 200 and body["user_id"] == clerk, body
    return chat_user, clerk


def test_a_press_accepts_the_ticket_as_the_bound_person_once_and_updates_the_card(stack, admin, build, dingtalk):
    ticket_id = open_ticket(stack, build)["ticket_id"]
    chat_user, clerk = bound_clerk(stack, admin, build.unique)
    event = press(ticket_id, chat_user)
    path, body = callback(event)
    status, answer, _ = stack.raw_request("POST", path, body)
    assert status == 200, answer
    # DingTalk's answer: the encrypted "success", signed with the callback's own timestamp and nonce.
    query = dict(part.split("=", 1) for part in path.split("?", 1)[1].split("&"))
    assert (answer["timeStamp"], answer["nonce"]) == (query["timestamp"], query["nonce"])
    assert answer["msg_signature"] == CRYPTO.signature(answer["timeStamp"], answer["nonce"], answer["encrypt"])
    assert CRYPTO.decrypt(answer["encrypt"]) == "success"

    [entry] = accepts(stack, ticket_id)
    assert entry["user"]["user_id"] == clerk
    update = poll(lambda: [u for u in dingtalk.updates if u["outTrackId"] == event["outTrackId"]], 10, "the card update")
    params = update[0]["cardData"]["cardParamMap"]
    assert params["taken_by"].startswith(f"李警官{build.unique[:2]}（交警大队海湾中队）") and params["taken_by"].endswith("签收")
    assert params["buttons"] == "hidden"

    # DingTalk delivering the same press again (a new timestamp and nonce): answered, applied once.
    status, answer, _ = stack.raw_request("POST", *callback(event))
    assert status == 200 and CRYPTO.decrypt(answer["encrypt"]) == "success"
    assert len(accepts(stack, ticket_id)) == 1


def test_a_forged_signature_is_refused_and_changes_nothing(stack, admin, build, dingtalk):
    ticket_id = open_ticket(stack, build)["ticket_id"]
    chat_user, _ = bound_clerk(stack, admin, build.unique)
    event = press(ticket_id, chat_user)
    path, body = callback(event, signature="f" * 40)
    status, answer, _ = stack.raw_request("POST", path, body)
    assert (status, answer) == (403, {"errcode": 900006, "errmsg": "signature does not match"})
    # Encrypted with another app's key: the signature holds for the attacker's token, not for ours.
    forged = cc.CallbackCrypto("guessed-token", "Z" * 43, APP_KEY)
    status, answer, _ = stack.raw_request("POST", *callback(event, crypto=forged))
    assert status == 403 and answer["errcode"] == 900006
    assert accepts(stack, ticket_id) == []
    assert not [u for u in dingtalk.updates if u["outTrackId"] == event["outTrackId"]]


def test_an_unbound_user_gets_dingtalks_error_answer(stack, admin, build):
    ticket_id = open_ticket(stack, build)["ticket_id"]
    status, answer, _ = stack.raw_request("POST", *callback(press(ticket_id, f"stranger{build.unique}")))
    assert status == 403 and answer["errcode"] == 900020 and answer["errmsg"].startswith("钉钉账号未绑定工单系统账号")
    # Bound to someone of another department: not theirs to accept.
    other = stack.add_user(f"env.{build.unique}", "environment", UserRole.clerk)
    status, _ = stack.request("PUT", f"/api/chat-bindings/dingtalk/envuser{build.unique}", token=admin,
                              body={"user_id": other})
    assert status == 200
    status, answer, _ = stack.raw_request("POST", *callback(press(ticket_id, f"envuser{build.unique}")))
    assert status == 403 and answer["errcode"] == 900021
    assert accepts(stack, ticket_id) == []


def test_bindings_are_an_admins_to_set(stack, admin, build):
    clerk_token = stack.user_token(stack.add_user(f"c2.{build.unique}", "traffic_police", UserRole.clerk))
    status, body = stack.request("PUT", f"/api/chat-bindings/dingtalk/me{build.unique}", token=clerk_token,
                                 body={"user_id": f"c2.{build.unique}"})
    assert status == 403, body
    for path, payload, code in ((f"/api/chat-bindings/wechat/x{build.unique}", {"user_id": "admin.x"}, 404),
                                (f"/api/chat-bindings/dingtalk/bad%20id", {"user_id": f"c2.{build.unique}"}, 422),
                                (f"/api/chat-bindings/dingtalk/x{build.unique}", {"user_id": "nobody.here"}, 404)):
        status, body = stack.request("PUT", path, token=admin, body=payload)
        assert status == code and "error" in body, (path, status, body)
    status, listed = stack.get("/api/chat-bindings", token=admin)
    assert status == 200 and isinstance(listed["dingtalk"], list)
    status, body = stack.request("DELETE", f"/api/chat-bindings/dingtalk/none{build.unique}", token=admin)
    assert status == 404, body


def test_a_red_tickets_card_is_sent_and_its_button_accepts_it(stack, admin, build, dingtalk):
    stack.send("soc.raw.flood", build.flood(value=4.6))  # over the danger level: a red ticket
    ticket = poll(lambda: stack.tickets_where(lambda t: t.source_ref.startswith(f"WL-{build.unique}")), 30,
                  "the red ticket")[0]
    card = poll(lambda: [c for c in dingtalk.cards if c["cardData"]["cardParamMap"]["ticket_id"] == ticket.ticket_id],
                10, "the card at DingTalk")[0]
    params = card["cardData"]["cardParamMap"]
    assert params["title"].startswith("【红色I级·派遣】") and params["buttons"] == "shown" and params["taken_by"] == ""
    assert params["link"].endswith(f"/inbox#ticket={ticket.ticket_id}")
    assert card["callbackRouteKey"] and card["conversationType"] == 1

    chat_user, clerk = bound_clerk(stack, admin, build.unique, ticket.department)
    event = {**press(params["ticket_id"], chat_user), "outTrackId": card["outTrackId"]}
    status, answer, _ = stack.raw_request("POST", *callback(event))
    assert status == 200 and CRYPTO.decrypt(answer["encrypt"]) == "success", answer
    [entry] = accepts(stack, ticket.ticket_id)
    assert entry["user"]["user_id"] == clerk
    update = poll(lambda: [u for u in dingtalk.updates if u["outTrackId"] == card["outTrackId"]], 10, "the update")
    assert update[0]["cardData"]["cardParamMap"]["taken_by"].endswith("签收")


# ---------------------------------------------------------------- WeCom (企业微信 模板卡片, 按钮交互型)

def wecom_callback(event: dict[str, str], crypto: cc.CallbackCrypto = WECOM, signature: str | None = None
                   ) -> tuple[str, bytes]:
    """The request WeCom makes: msg_signature, timestamp (s) and nonce in the query, the XML with <Encrypt>."""
    xml = "<xml>" + "".join(f"<{k}><![CDATA[{v}]]></{k}>" for k, v in event.items()) + "</xml>"
    timestamp, nonce = str(int(time.time())), str(uuid.uuid4().int % 10**10)
    encrypt = crypto.encrypt(xml, os.urandom(16))
    signature = signature or crypto.signature(timestamp, nonce, encrypt)
    body = (f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt>"
            f"<AgentID><![CDATA[{AGENT_ID}]]></AgentID></xml>").encode()
    return f"/api/chat/wecom/callback?msg_signature={signature}&timestamp={timestamp}&nonce={nonce}", body


def wecom_press(ticket_id: str, user_id: str, action: str = "accept", task: str | None = None) -> dict[str, str]:
    return {"ToUserName": CORP_ID, "FromUserName": user_id, "CreateTime": str(int(time.time())), "MsgType": "event",
            "Event": "template_card_event", "EventKey": f"{action}|{ticket_id}",
            "TaskId": task or f"soc-{uuid.uuid4().hex}", "CardType": "button_interaction",
            "ResponseCode": f"rc-{uuid.uuid4().hex}", "AgentID": str(AGENT_ID)}


def bind(stack, admin: str, vendor: str, chat_user: str, user_id: str) -> None:
    status, body = stack.request("PUT", f"/api/chat-bindings/{vendor}/{chat_user}", token=admin,
                                 body={"user_id": user_id})
    assert status == 200, body


def test_wecom_checks_the_url_as_wecom_does(stack):
    echo = WECOM.encrypt("1616140317555161061", os.urandom(16))
    timestamp, nonce = str(int(time.time())), "263014780"
    query = urllib.parse.urlencode({"msg_signature": WECOM.signature(timestamp, nonce, echo), "timestamp": timestamp,
                                    "nonce": nonce, "echostr": echo})
    with urllib.request.urlopen(f"{stack.worker.url}/api/chat/wecom/callback?{query}", timeout=10) as response:
        assert response.read() == b"1616140317555161061"


def test_a_wecom_press_accepts_as_the_bound_person_once_and_replaces_the_buttons(stack, admin, build, dingtalk):
    ticket_id = open_ticket(stack, build)["ticket_id"]
    clerk = stack.add_user(f"wx.{build.unique}", "traffic_police", UserRole.clerk, name="赵警官")
    bind(stack, admin, "wecom", f"zhao{build.unique}", clerk)
    event = wecom_press(ticket_id, f"zhao{build.unique}")
    status, answer, _ = stack.raw_request("POST", *wecom_callback(event))
    assert status == 200, answer
    [entry] = accepts(stack, ticket_id)
    assert entry["user"]["user_id"] == clerk
    update = poll(lambda: [u for u in dingtalk.wecom_updates if u["response_code"] == event["ResponseCode"]], 10,
                  "the card update")
    assert update[0]["button"] == {"replace_name": "赵警官 已签收"} and update[0]["atall"] == 1
    # WeCom retrying the same event: applied once.
    status, _, _ = stack.raw_request("POST", *wecom_callback(event))
    assert status == 200 and len(accepts(stack, ticket_id)) == 1


def test_wecom_refuses_a_forged_signature_and_tells_an_unbound_user_in_a_message(stack, build, dingtalk):
    ticket_id = open_ticket(stack, build)["ticket_id"]
    status, answer, _ = stack.raw_request("POST", *wecom_callback(wecom_press(ticket_id, "anyone"), signature="0" * 40))
    assert (status, answer) == (403, {"errcode": -40001, "errmsg": "ValidateSignature_Error"})
    # WeCom shows the presser nothing of the answer and sends again what is not answered 200: received, and
    # the person gets a message of the app with their binding code.
    nobody = f"nobody{build.unique}"
    status, answer, _ = stack.raw_request("POST", *wecom_callback(wecom_press(ticket_id, nobody)))
    assert status == 200, answer
    [told] = poll(lambda: [m for m in dingtalk.wecom_texts if m["touser"] == nobody], 10, "the message to the presser")
    assert re.match(r"企业微信账号未绑定工单系统账号：请登录工单系统，用绑定码 [A-Z0-9]{8} 绑定", told["text"]["content"])
    assert accepts(stack, ticket_id) == []


def test_an_orange_city_tickets_wecom_card_is_sent_and_its_button_accepts_it(stack, admin, build, dingtalk):
    stack.send("soc.raw.city", build.city(category="manhole_cover_missing", description="井盖缺失"))
    ticket = poll(lambda: stack.tickets_where(lambda t: t.source_ref.startswith("12345-") and build.unique in t.source_ref
                                             and t.department == "city_management"), 30, "the orange ticket")[0]
    sent = poll(lambda: [c for c in dingtalk.wecom_cards
                         if any(b["key"] == f"accept|{ticket.ticket_id}" for b in c["template_card"]["button_list"])],
                15, "the WeCom card")[0]
    card = sent["template_card"]
    assert [b["text"] for b in card["button_list"]] == ["签收", "已知悉"]
    assert card["card_action"]["url"].endswith(f"/inbox#ticket={ticket.ticket_id}")  # 查看: the card opens the ticket

    clerk = stack.add_user(f"cg.{build.unique}", "city_management", UserRole.clerk, name="陈队员")
    bind(stack, admin, "wecom", "chengguan01", clerk)
    event = {**wecom_press(ticket.ticket_id, "chengguan01"), "TaskId": card["task_id"]}
    status, answer, _ = stack.raw_request("POST", *wecom_callback(event))
    assert status == 200, answer
    assert [h["user"]["user_id"] for h in accepts(stack, ticket.ticket_id)] == [clerk]
    update = poll(lambda: [u for u in dingtalk.wecom_updates if u["response_code"] == event["ResponseCode"]], 10,
                  "the card update")
    assert update[0]["button"]["replace_name"] == "陈队员 已签收"


# ---------------------------------------------------------------- Feishu (飞书 消息卡片, card.action.trigger)

def feishu_callback(event: dict, crypto: cc.FeishuCrypto = FEISHU, signature: str | None = None
                    ) -> tuple[bytes, dict]:
    """What Feishu posts: the encrypted body, signed in X-Lark-Signature over timestamp, nonce, key and body."""
    body = json.dumps({"encrypt": crypto.encrypt(json.dumps(event, ensure_ascii=False), os.urandom(16))}).encode()
    timestamp, nonce = str(int(time.time())), marker()
    return body, {"Content-Type": "application/json", "X-Lark-Request-Timestamp": timestamp,
                  "X-Lark-Request-Nonce": nonce, "X-Lark-Signature": signature or crypto.signature(timestamp, nonce, body)}


def feishu_press(ticket_id: str, open_id: str, message_id: str, action: str = "accept") -> dict:
    return {"schema": "2.0",
            "header": {"event_id": uuid.uuid4().hex, "token": FEISHU_TOKEN, "create_time": str(int(time.time() * 1e6)),
                       "event_type": "card.action.trigger", "tenant_key": "tk", "app_id": FEISHU_APP_ID},
            "event": {"operator": {"open_id": open_id, "user_id": "u1"}, "token": f"c-{uuid.uuid4().hex}",
                      "action": {"tag": "button", "value": {"action": action, "ticket_id": ticket_id}},
                      "context": {"open_message_id": message_id, "open_chat_id": CHAT_ID}}}


def post_feishu(stack, event: dict, **kw) -> tuple[int, dict]:
    body, headers = feishu_callback(event, **kw)
    status, answer, _ = stack.raw_request("POST", "/api/chat/feishu/callback", body, headers)
    return status, answer


def test_feishu_answers_its_url_verification(stack):
    status, answer = post_feishu(stack, {"challenge": "ch-123", "token": FEISHU_TOKEN, "type": "url_verification"})
    assert (status, answer) == (200, {"challenge": "ch-123"})


def test_a_red_traffic_tickets_feishu_card_is_sent_and_its_button_accepts_it(stack, admin, build, dingtalk):
    ticket_id = open_ticket(stack, build, vehicles=5)["ticket_id"]  # five vehicles: red

    def sent():
        return [c for c in dingtalk.feishu_cards for el in c["card"]["elements"] if el["tag"] == "action"
                for b in el["actions"] if b.get("value", {}).get("ticket_id") == ticket_id]
    sent_card = poll(sent, 15, "the Feishu card")[0]
    card = sent_card["card"]
    assert card["config"]["update_multi"] is True and card["header"]["template"] == "red"
    buttons = [b["text"]["content"] for el in card["elements"] if el["tag"] == "action" for b in el["actions"]]
    assert buttons == ["签收", "已知悉", "查看"]

    clerk = stack.add_user(f"fs.{build.unique}", "traffic_police", UserRole.clerk, name="周警官")
    bind(stack, admin, "feishu", f"ou_{build.unique}", clerk)
    event = feishu_press(ticket_id, f"ou_{build.unique}", sent_card["message_id"])
    status, answer = post_feishu(stack, event)
    assert (status, answer) == (200, {"toast": {"type": "success", "content": "已签收"}})
    assert [h["user"]["user_id"] for h in accepts(stack, ticket_id)] == [clerk]
    updated = poll(lambda: [c for m, c in dingtalk.feishu_updates if m == sent_card["message_id"]], 10, "the update")
    texts = json.dumps(updated[0], ensure_ascii=False)
    assert "周警官（交警大队海湾中队）" in texts and "签收" in texts and '"value"' not in texts  # no buttons left
    # Feishu delivering the press again: applied once.
    assert post_feishu(stack, event)[0] == 200 and len(accepts(stack, ticket_id)) == 1


def test_feishu_refuses_a_forged_signature_and_toasts_an_unbound_user(stack, build):
    ticket_id = open_ticket(stack, build)["ticket_id"]
    status, answer = post_feishu(stack, feishu_press(ticket_id, "ou_x", "om_x"), signature="0" * 64)
    assert (status, answer) == (403, {"errcode": 900006, "errmsg": "signature does not match"})
    status, answer = post_feishu(stack, feishu_press(ticket_id, f"ou_nobody{build.unique}", "om_x"))
    assert status == 200 and answer["toast"]["type"] == "error"
    assert answer["toast"]["content"].startswith("飞书账号未绑定工单系统账号")
    assert accepts(stack, ticket_id) == []


@pytest.mark.parametrize("path", ["/api/chat/dingtalk/callback", "/api/chat/wecom/callback",
                                  "/api/chat/feishu/callback"])
@pytest.mark.parametrize("query, body", [("", b""), ("?signature=x&timestamp=1&nonce=n&msg_signature=x", b"\xff\xfe"),
                                         ("?signature=x&timestamp=1&nonce=n&msg_signature=x", b"<xml><Encrypt>"),
                                         ("", b"{" * 70_000)])
def test_garbage_at_a_callback_is_a_4xx_with_a_json_error(stack, path, query, body):
    status, answer, _ = stack.raw_request("POST", path + query, body, {"Content-Type": "application/json"})
    assert 400 <= status < 500 and isinstance(answer, dict) and ("errcode" in answer or "error" in answer), answer


def test_an_unbound_person_binds_themselves_with_the_code_their_press_answered(stack, build):
    ticket_id = open_ticket(stack, build)["ticket_id"]
    chat_user = f"self{build.unique}"
    event = press(ticket_id, chat_user)
    status, answer, _ = stack.raw_request("POST", *callback(event))
    assert status == 403 and answer["errcode"] == 900020
    code = re.search(r"绑定码 ([A-Z0-9]{8}) ", answer["errmsg"]).group(1)
    clerk = stack.add_user(f"me.{build.unique}", "traffic_police", UserRole.clerk, name="孙警官")
    # Signed in on the pages (session and CSRF token), the person claims the code once.
    session = stack.sign_in(clerk)
    status, bound, _ = stack.raw_request("POST", "/api/chat-bindings/claim", {"code": code},
                                         {**session, "Origin": stack.worker.url})
    assert status == 200 and bound == {"vendor": "dingtalk", "chat_user_id": chat_user, "user_id": clerk}, bound
    status, again, _ = stack.raw_request("POST", "/api/chat-bindings/claim", {"code": code},
                                         {**session, "Origin": stack.worker.url})
    assert status == 404, again
    # A department's service credential is nobody's to bind.
    status, _ = stack.request("POST", "/api/chat-bindings/claim", "traffic_police", {"code": "ABCDEFGH"})
    assert status == 403
    status, _, _ = stack.raw_request("POST", *callback(event))
    assert status == 200 and [h["user"]["user_id"] for h in accepts(stack, ticket_id)] == [clerk]
