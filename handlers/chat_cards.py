"""Acting from the chat card: DingTalk's interactive card (互动卡片), its encrypted HTTP callback and its update
in place. No I/O: builders return the exact request, readers take the exact bytes.

Formats, as DingTalk documents them:

- **The callback** (HTTP 回调, 加密): ``POST <callbackUrl>?signature=&timestamp=&nonce=`` with the JSON body
  ``{"encrypt": "<base64>"}``. ``signature = sha1hex("".join(sorted([token, timestamp, nonce, encrypt])))``.
  ``encrypt = base64(AES-256-CBC(key, iv=key[:16], PKCS#7 padded to 32 bytes, random(16) + len(msg) as 4 bytes
  big-endian + msg + owner key))`` where ``key = base64decode(aes_key + "=")`` (the 43-character 加密 aes_key)
  and the owner key is the app's AppKey (corpId or suiteKey for other app kinds). The answer is the encrypted
  ``"success"``: ``{"msg_signature", "timeStamp", "nonce", "encrypt"}`` signed the same way. DingTalk checks a
  new callback URL with the event ``{"EventType": "check_url"}``, answered the same way.
- **A card action** (回传请求), the decrypted message: ``{"outTrackId", "userId", "corpId", "content"}`` where
  ``content`` is a JSON string ``{"cardPrivateData": {"actionIds": [<button>], "params": {...}}}``. Our card
  template's buttons: 签收 (``accept``) and 已知悉 (``acknowledge``), each with the params ``{"ticket_id"}``;
  查看 opens the inbox link and calls nothing back.
- **The card**: ``POST /v1.0/im/interactiveCards/send`` (header ``x-acs-dingtalk-access-token``) with
  ``{"cardTemplateId", "openConversationId", "conversationType": 1, "robotCode", "outTrackId",
  "callbackRouteKey", "cardData": {"cardParamMap": {...strings...}}}``; updated in place by
  ``PUT /v1.0/im/interactiveCards`` with ``{"outTrackId", "cardData": {"cardParamMap"}, "cardOptions":
  {"updateCardDataByKey": true}}``. The app's access token comes from ``POST /v1.0/oauth2/accessToken``
  ``{"appKey", "appSecret"}`` -> ``{"accessToken", "expireIn"}``.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct
from dataclasses import dataclass
from enum import StrEnum
from urllib.parse import urlencode

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from defusedxml import DefusedXmlException
from defusedxml import ElementTree

from handlers.notify_channels import JSON_HEADERS, HttpRequest, Message, _json_body
from schemas.records import TicketAction

# DingTalk pads to 32 bytes (its PKCS7Encoder), not to AES's 16-byte block.
PAD_BLOCK = 32
# A callback whose timestamp is further than this from our clock is refused (DingTalk retries within minutes).
MAX_SKEW_MS = 10 * 60 * 1000
SUCCESS = "success"


class ChatVendor(StrEnum):
    """The chat apps whose cards carry buttons."""

    dingtalk = "dingtalk"
    wecom = "wecom"
    feishu = "feishu"


class CardAction(StrEnum):
    """The card's callback buttons, as the card template names them (actionIds)."""

    accept = "accept"  # 签收
    acknowledge = "acknowledge"  # 已知悉


TICKET_ACTION = {CardAction.accept: TicketAction.accept, CardAction.acknowledge: TicketAction.acknowledge}
ACTION_TEXT = {CardAction.accept: "签收", CardAction.acknowledge: "已知悉"}


class Refused(Exception):
    """A callback that is not DingTalk's (or not ours): the vendor's error code and message, and the HTTP
    status to answer with."""

    def __init__(self, status: int, errcode: int, errmsg: str):
        super().__init__(errmsg)
        self.status, self.errcode, self.errmsg = status, errcode, errmsg

    def body(self) -> dict:
        return {"errcode": self.errcode, "errmsg": self.errmsg}


@dataclass(frozen=True)
class CallbackCrypto:
    """The callback encryption DingTalk (DingCallbackCrypto) and WeCom (WXBizMsgCrypt) both document, for one app:
    its token, 43-character aes_key (EncodingAESKey), and the id that ends every message (DingTalk: the app's
    AppKey; WeCom: the corpid)."""

    token: str
    aes_key: str
    owner_key: str

    def __post_init__(self) -> None:
        if len(self.aes_key) != 43:
            raise ValueError("DingTalk's aes_key has 43 characters")

    @property
    def _key(self) -> bytes:
        return base64.b64decode(self.aes_key + "=")

    def signature(self, timestamp: str, nonce: str, encrypt: str) -> str:
        return hashlib.sha1("".join(sorted([self.token, timestamp, nonce, encrypt])).encode("utf-8")).hexdigest()

    def encrypt(self, plain: str, random: bytes) -> str:
        """`random`: 16 bytes (a caller's os.urandom; a parameter so that tests and replays are exact)."""
        if len(random) != 16:
            raise ValueError("random must be 16 bytes")
        msg = plain.encode("utf-8")
        data = random + struct.pack(">I", len(msg)) + msg + self.owner_key.encode("utf-8")
        pad = PAD_BLOCK - len(data) % PAD_BLOCK
        data += bytes([pad]) * pad
        encryptor = Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16])).encryptor()
        return base64.b64encode(encryptor.update(data) + encryptor.finalize()).decode("ascii")

    def decrypt(self, encrypt: str) -> str:
        try:
            raw = base64.b64decode(encrypt, validate=True)
        except (ValueError, TypeError):
            raise Refused(400, 900001, "encrypt is not base64") from None
        if not raw or len(raw) % 16:
            raise Refused(400, 900001, "encrypt is not whole AES blocks")
        decryptor = Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16])).decryptor()
        data = decryptor.update(raw) + decryptor.finalize()
        pad = data[-1]
        if not 1 <= pad <= PAD_BLOCK or data[-pad:] != bytes([pad]) * pad or len(data) - pad < 20:
            raise Refused(400, 900002, "decryption failed")
        data = data[:-pad]
        (length,) = struct.unpack(">I", data[16:20])
        msg, owner = data[20:20 + length], data[20 + length:]
        if len(msg) != length or owner != self.owner_key.encode("utf-8"):
            raise Refused(403, 900003, "the message is for another app")
        try:
            return msg.decode("utf-8")
        except UnicodeDecodeError:
            raise Refused(400, 900002, "decryption failed") from None

    def open_dingtalk(self, query, body: bytes, now_ms: int) -> dict:
        """The decrypted event of a callback request, once its signature and time check out."""
        timestamp, nonce, signature = (query.get(k, "") for k in ("timestamp", "nonce", "signature"))
        if not timestamp.isdigit() or not nonce or not signature:
            raise Refused(400, 900004, "signature, timestamp and nonce are required")
        try:
            encrypt = json.loads(body)["encrypt"]
        except (ValueError, TypeError, KeyError, UnicodeDecodeError):
            raise Refused(400, 900005, 'the body must be {"encrypt": "..."}') from None
        if not isinstance(encrypt, str):
            raise Refused(400, 900005, 'the body must be {"encrypt": "..."}')
        if not hmac.compare_digest(self.signature(timestamp, nonce, encrypt).encode(), signature.encode("utf-8")):
            raise Refused(403, 900006, "signature does not match")
        if abs(int(timestamp) - now_ms) > MAX_SKEW_MS:
            raise Refused(403, 900007, "timestamp is too far from now")
        try:
            event = json.loads(self.decrypt(encrypt))
        except ValueError:
            raise Refused(400, 900008, "the decrypted message is not JSON") from None
        if not isinstance(event, dict):
            raise Refused(400, 900008, "the decrypted message is not a JSON object")
        return event

    def _checked(self, signature: str, timestamp: str, nonce: str, encrypt: str, now_s: int) -> str:
        """WeCom's check: signature, then time (seconds), then the decrypted message; WXBizMsgCrypt's codes."""
        if not hmac.compare_digest(self.signature(timestamp, nonce, encrypt).encode(), signature.encode("utf-8")):
            raise Refused(403, -40001, "ValidateSignature_Error")
        if not timestamp.isdigit() or abs(int(timestamp) - now_s) > MAX_SKEW_MS // 1000:
            raise Refused(403, -40001, "ValidateSignature_Error: timestamp too far from now")
        try:
            return self.decrypt(encrypt)
        except Refused as refused:
            raise Refused(refused.status, -40005 if refused.status == 403 else -40007,
                          "ValidateCorpid_Error" if refused.status == 403 else "DecryptAES_Error") from None

    def wecom_url_echo(self, query, now_s: int) -> str:
        """WeCom's check of a new callback URL (GET with msg_signature, timestamp, nonce, echostr): the
        decrypted echostr, to answer as plain text."""
        signature, timestamp, nonce, echo = (query.get(k, "") for k in ("msg_signature", "timestamp", "nonce", "echostr"))
        if not (signature and timestamp and nonce and echo):
            raise Refused(400, -40002, "msg_signature, timestamp, nonce and echostr are required")
        return self._checked(signature, timestamp, nonce, echo, now_s)

    def open_wecom(self, query, body: bytes, now_s: int) -> dict[str, str]:
        """A WeCom callback (POST ?msg_signature=&timestamp=&nonce=, XML body with <Encrypt>): its decrypted
        event as {tag: text}."""
        signature, timestamp, nonce = (query.get(k, "") for k in ("msg_signature", "timestamp", "nonce"))
        if not (signature and timestamp and nonce):
            raise Refused(400, -40002, "msg_signature, timestamp and nonce are required")
        encrypt = _xml_fields(body).get("Encrypt")
        if not encrypt:
            raise Refused(400, -40002, "ParseXml_Error: no Encrypt")
        return _xml_fields(self._checked(signature, timestamp, nonce, encrypt, now_s).encode("utf-8"))

    def answer(self, plain: str, timestamp: str, nonce: str, random: bytes) -> dict:
        """The encrypted answer DingTalk expects (plain: "success")."""
        encrypt = self.encrypt(plain, random)
        return {"msg_signature": self.signature(timestamp, nonce, encrypt), "timeStamp": timestamp, "nonce": nonce,
                "encrypt": encrypt}


def _xml_fields(data: bytes) -> dict[str, str]:
    """The child elements of a flat WeCom XML message, as {tag: text}; entities and DTDs refused."""
    try:
        root = ElementTree.fromstring(data)
    except (ElementTree.ParseError, DefusedXmlException, ValueError):
        raise Refused(400, -40002, "ParseXml_Error") from None
    return {child.tag: (child.text or "").strip() for child in root}


@dataclass(frozen=True)
class Press:
    """One button pressed on one card by one DingTalk user."""

    out_track_id: str  # DingTalk's outTrackId, WeCom's task_id
    user_id: str
    action: CardAction
    ticket_id: str
    response_code: str = ""  # WeCom: what updates the card (good once)


def is_url_check(event: dict) -> bool:
    return event.get("EventType") == "check_url"


def press_of(event: dict) -> Press:
    """The button press in a decrypted card callback (a 400 Refused when it is not one of our buttons)."""
    out_track_id, user_id, content = event.get("outTrackId"), event.get("userId"), event.get("content")
    if not all(isinstance(v, str) and v for v in (out_track_id, user_id, content)):
        raise Refused(400, 900010, "outTrackId, userId and content are required")
    try:
        private = json.loads(content)["cardPrivateData"]
        action_ids, params = private["actionIds"], private.get("params") or {}
    except (ValueError, TypeError, KeyError):
        raise Refused(400, 900011, "content has no cardPrivateData.actionIds") from None
    if not isinstance(action_ids, list) or len(action_ids) != 1 or action_ids[0] not in CardAction.__members__:
        raise Refused(400, 900012, "unknown card action")
    ticket_id = params.get("ticket_id") if isinstance(params, dict) else None
    if not isinstance(ticket_id, str) or not ticket_id:
        raise Refused(400, 900013, "the action carries no ticket_id")
    return Press(out_track_id, user_id, CardAction(action_ids[0]), ticket_id)


def wecom_press_of(event: dict[str, str]) -> Press:
    """The button press in a decrypted WeCom template card event (template_card_event): the button's key is
    ``<action>|<ticket_id>``, the card's task_id stands for DingTalk's outTrackId."""
    if event.get("MsgType") != "event" or event.get("Event") != "template_card_event":
        raise Refused(400, -40002, "not a template card event")
    action, _, ticket_id = event.get("EventKey", "").partition("|")
    task_id, user_id = event.get("TaskId", ""), event.get("FromUserName", "")
    if action not in CardAction.__members__ or not ticket_id or not task_id or not user_id:
        raise Refused(400, -40002, "unknown card button")
    return Press(task_id, user_id, CardAction(action), ticket_id, event.get("ResponseCode", ""))


def client_id(press: Press) -> str:
    """The command's client id (streams/http/api.py command_event_id scopes it to the person): the same button
    on the same card by the same person is one command however often DingTalk delivers it."""
    return "dt" + hashlib.sha256(f"{press.out_track_id}\n{press.action.value}".encode()).hexdigest()[:40]


# ------------------------------------------------------------------ the card

def out_track_id(delivery_id: str) -> str:
    """The card's id, from the delivery's own (a resend of the delivery is the same card)."""
    return "soc-" + hashlib.sha256(delivery_id.encode()).hexdigest()[:32]


def card_params(message: Message, ticket_id: str, taken_by: str = "") -> dict[str, str]:
    """The card template's variables (DingTalk takes strings only). `taken_by` once someone took it."""
    # Not the status: the card would keep saying 待签收 after someone took it (taken_by says that instead).
    lines = [f"**{label}**：{value}" for label, value in message.fields if label != "状态"]
    if message.description:
        lines.append(message.description)
    return {"title": message.title, "markdown": "\n\n".join(lines), "ticket_id": ticket_id, "link": message.link,
            "taken_by": taken_by, "buttons": "hidden" if taken_by else "shown"}


def taken_params(ticket_id: str, action: CardAction, name: str, department: str, at_local: str) -> dict[str, str]:
    """What changes on the card when someone took it (the update sends only these keys)."""
    return {"ticket_id": ticket_id, "taken_by": f"{name}（{department}）{at_local} {ACTION_TEXT[action]}",
            "buttons": "hidden"}


def access_token_request(api_url: str, app_key: str, app_secret: str) -> HttpRequest:
    return HttpRequest("POST", f"{api_url.rstrip('/')}/v1.0/oauth2/accessToken", dict(JSON_HEADERS),
                       _json_body({"appKey": app_key, "appSecret": app_secret}))


def send_card_request(api_url: str, access_token: str, *, template_id: str, conversation_id: str, robot_code: str,
                      route_key: str, track_id: str, params: dict[str, str]) -> HttpRequest:
    body = {"cardTemplateId": template_id, "openConversationId": conversation_id, "conversationType": 1,
            "robotCode": robot_code, "outTrackId": track_id, "callbackRouteKey": route_key,
            "cardData": {"cardParamMap": params}}
    return HttpRequest("POST", f"{api_url.rstrip('/')}/v1.0/im/interactiveCards/send",
                       {**JSON_HEADERS, "x-acs-dingtalk-access-token": access_token}, _json_body(body))


def update_card_request(api_url: str, access_token: str, track_id: str, params: dict[str, str]) -> HttpRequest:
    body = {"outTrackId": track_id, "cardData": {"cardParamMap": params},
            "cardOptions": {"updateCardDataByKey": True}}
    return HttpRequest("PUT", f"{api_url.rstrip('/')}/v1.0/im/interactiveCards",
                       {**JSON_HEADERS, "x-acs-dingtalk-access-token": access_token}, _json_body(body))


# ------------------------------------------------------------------ WeCom (企业微信 模板卡片, 按钮交互型)

def wecom_token_request(api_url: str, corp_id: str, secret: str) -> HttpRequest:
    """GET /cgi-bin/gettoken?corpid=&corpsecret= -> {"errcode": 0, "access_token", "expires_in"}."""
    query = urlencode({"corpid": corp_id, "corpsecret": secret})
    return HttpRequest("GET", f"{api_url.rstrip('/')}/cgi-bin/gettoken?{query}", {}, b"")


def wecom_card_request(api_url: str, access_token: str, *, agent_id: int, to_users: str, task_id: str,
                       message: Message, ticket_id: str) -> HttpRequest:
    """POST /cgi-bin/message/send: a button_interaction template card with 签收 and 已知悉 (keys
    ``<action>|<ticket_id>``); the card itself opens the ticket (查看)."""
    card = {"card_type": "button_interaction", "task_id": task_id,
            "main_title": {"title": message.title[:36], "desc": dict(message.fields).get("经过", "")[:44]},
            "horizontal_content_list": [{"keyname": label, "value": value[:30]} for label, value in message.fields
                                        if label in ("等级", "社区", "责任部门", "签收期限")],
            "card_action": {"type": 1, "url": message.link},
            "button_list": [{"text": ACTION_TEXT[a], "style": 1 if a is CardAction.accept else 2,
                             "key": f"{a.value}|{ticket_id}"} for a in CardAction]}
    body = {"touser": to_users, "msgtype": "template_card", "agentid": agent_id, "template_card": card}
    return HttpRequest("POST", f"{api_url.rstrip('/')}/cgi-bin/message/send?access_token={access_token}",
                       dict(JSON_HEADERS), _json_body(body))


def wecom_text_request(api_url: str, access_token: str, *, agent_id: int, to_user: str, text: str) -> HttpRequest:
    """POST /cgi-bin/message/send: a text message of the app to one person (why their press did nothing)."""
    body = {"touser": to_user, "msgtype": "text", "agentid": agent_id, "text": {"content": text}}
    return HttpRequest("POST", f"{api_url.rstrip('/')}/cgi-bin/message/send?access_token={access_token}",
                       dict(JSON_HEADERS), _json_body(body))


def wecom_update_request(api_url: str, access_token: str, *, agent_id: int, response_code: str,
                         replace_name: str) -> HttpRequest:
    """POST /cgi-bin/message/update_template_card: the card's buttons replaced, for everyone it went to, by
    one that says who took it (a response_code is good once, for 72 hours)."""
    body = {"atall": 1, "agentid": agent_id, "response_code": response_code, "button": {"replace_name": replace_name}}
    return HttpRequest("POST", f"{api_url.rstrip('/')}/cgi-bin/message/update_template_card?access_token={access_token}",
                       dict(JSON_HEADERS), _json_body(body))


# ------------------------------------------------------------------ Feishu (飞书 消息卡片, card.action.trigger)

@dataclass(frozen=True)
class FeishuCrypto:
    """Feishu's callback checks: X-Lark-Signature = sha256hex(timestamp + nonce + Encrypt Key + body) over the
    raw body, the body {"encrypt": base64(iv(16) + AES-256-CBC(key=sha256(Encrypt Key), PKCS#7))}, and the
    Verification Token inside the decrypted callback."""

    encrypt_key: str
    verification_token: str

    @property
    def _key(self) -> bytes:
        return hashlib.sha256(self.encrypt_key.encode("utf-8")).digest()

    def signature(self, timestamp: str, nonce: str, body: bytes) -> str:
        return hashlib.sha256(timestamp.encode() + nonce.encode() + self.encrypt_key.encode() + body).hexdigest()

    def encrypt(self, plain: str, iv: bytes) -> str:
        data = plain.encode("utf-8")
        pad = 16 - len(data) % 16
        encryptor = Cipher(algorithms.AES(self._key), modes.CBC(iv)).encryptor()
        return base64.b64encode(iv + encryptor.update(data + bytes([pad]) * pad) + encryptor.finalize()).decode()

    def decrypt(self, encrypt: str) -> str:
        try:
            raw = base64.b64decode(encrypt, validate=True)
        except (ValueError, TypeError):
            raise Refused(400, 900008, "encrypt is not base64") from None
        if len(raw) < 32 or len(raw) % 16:
            raise Refused(400, 900008, "encrypt is not whole AES blocks")
        decryptor = Cipher(algorithms.AES(self._key), modes.CBC(raw[:16])).decryptor()
        data = decryptor.update(raw[16:]) + decryptor.finalize()
        pad = data[-1]
        if not 1 <= pad <= 16 or data[-pad:] != bytes([pad]) * pad:
            raise Refused(400, 900008, "decryption failed")
        try:
            return data[:-pad].decode("utf-8")
        except UnicodeDecodeError:
            raise Refused(400, 900008, "decryption failed") from None

    def open_feishu(self, headers, body: bytes, now_s: int) -> dict:
        timestamp = headers.get("X-Lark-Request-Timestamp", "")
        nonce = headers.get("X-Lark-Request-Nonce", "")
        signature = headers.get("X-Lark-Signature", "")
        if not timestamp.isdigit() or not nonce or not signature:
            raise Refused(400, 900004, "X-Lark-Request-Timestamp, X-Lark-Request-Nonce and X-Lark-Signature are required")
        if not hmac.compare_digest(self.signature(timestamp, nonce, body).encode(), signature.encode("utf-8")):
            raise Refused(403, 900006, "signature does not match")
        if abs(int(timestamp) - now_s) > MAX_SKEW_MS // 1000:
            raise Refused(403, 900007, "timestamp is too far from now")
        try:
            encrypt = json.loads(body)["encrypt"]
            event = json.loads(self.decrypt(encrypt))
        except (ValueError, TypeError, KeyError, UnicodeDecodeError):
            raise Refused(400, 900005, 'the body must be {"encrypt": "..."} of a JSON callback') from None
        if not isinstance(event, dict):
            raise Refused(400, 900008, "the decrypted callback is not a JSON object")
        header = event.get("header") if isinstance(event.get("header"), dict) else {}
        token = event.get("token", header.get("token"))
        if not isinstance(token, str) or not hmac.compare_digest(token.encode(), self.verification_token.encode()):
            raise Refused(403, 900009, "verification token does not match")
        return event


def feishu_press_of(event: dict) -> Press:
    """The button press in a decrypted card.action.trigger callback: the button's value {"action",
    "ticket_id"}, the operator's open_id, the card's open_message_id, and the callback's token."""
    header, body = event.get("header") or {}, event.get("event") or {}
    if not isinstance(header, dict) or header.get("event_type") != "card.action.trigger" or not isinstance(body, dict):
        raise Refused(400, 900012, "not a card.action.trigger callback")
    value = (body.get("action") or {}).get("value") if isinstance(body.get("action"), dict) else None
    operator, context = body.get("operator") or {}, body.get("context") or {}
    action = value.get("action") if isinstance(value, dict) else None
    ticket_id = value.get("ticket_id") if isinstance(value, dict) else None
    open_id = operator.get("open_id") if isinstance(operator, dict) else None
    message_id = context.get("open_message_id") if isinstance(context, dict) else None
    if action not in CardAction.__members__ or not all(isinstance(v, str) and v for v in (ticket_id, open_id, message_id)):
        raise Refused(400, 900012, "unknown card button")
    return Press(message_id, open_id, CardAction(action), ticket_id, str(body.get("token") or ""))


def feishu_toast(kind: str, text: str) -> dict:
    """Feishu's answer to a card action: a toast ("success", "error", "info", "warning")."""
    return {"toast": {"type": kind, "content": text}}


def feishu_card(message: Message, ticket_id: str, taken_by: str = "") -> dict:
    """The message card (shared with everyone: update_multi): colour, the ticket's lines, 签收 and 已知悉
    (value {"action", "ticket_id"}) and 查看; once taken, who took it instead of the two buttons."""
    template = {"red": "red", "orange": "orange", "yellow": "yellow"}.get(message.severity.value, "blue")
    lines = "\n".join(f"**{label}**：{value}" for label, value in message.fields)
    view = {"tag": "button", "text": {"tag": "plain_text", "content": "查看"}, "type": "default", "url": message.link}
    actions = [view] if taken_by else [
        *({"tag": "button", "text": {"tag": "plain_text", "content": ACTION_TEXT[a]},
           "type": "primary" if a is CardAction.accept else "default",
           "value": {"action": a.value, "ticket_id": ticket_id}} for a in CardAction), view]
    elements = [{"tag": "div", "text": {"tag": "lark_md", "content": lines}}]
    if taken_by:
        elements.append({"tag": "div", "text": {"tag": "lark_md", "content": f"**{taken_by}**"}})
    elements.append({"tag": "action", "actions": actions})
    return {"config": {"wide_screen_mode": True, "update_multi": True},
            "header": {"title": {"tag": "plain_text", "content": message.title}, "template": template},
            "elements": elements}


def feishu_token_request(api_url: str, app_id: str, app_secret: str) -> HttpRequest:
    return HttpRequest("POST", f"{api_url.rstrip('/')}/open-apis/auth/v3/tenant_access_token/internal",
                       dict(JSON_HEADERS), _json_body({"app_id": app_id, "app_secret": app_secret}))


def feishu_send_request(api_url: str, access_token: str, chat_id: str, card: dict, uuid: str) -> HttpRequest:
    """POST /open-apis/im/v1/messages?receive_id_type=chat_id; `uuid` makes a resend the same message."""
    body = {"receive_id": chat_id, "msg_type": "interactive", "uuid": uuid,
            "content": json.dumps(card, ensure_ascii=False, separators=(",", ":"))}
    return HttpRequest("POST", f"{api_url.rstrip('/')}/open-apis/im/v1/messages?receive_id_type=chat_id",
                       {**JSON_HEADERS, "Authorization": f"Bearer {access_token}"}, _json_body(body))


def feishu_update_request(api_url: str, access_token: str, message_id: str, card: dict) -> HttpRequest:
    """PATCH /open-apis/im/v1/messages/{message_id}: the shared card replaced for everyone."""
    body = {"content": json.dumps(card, ensure_ascii=False, separators=(",", ":"))}
    return HttpRequest("PATCH", f"{api_url.rstrip('/')}/open-apis/im/v1/messages/{message_id}",
                       {**JSON_HEADERS, "Authorization": f"Bearer {access_token}"}, _json_body(body))
