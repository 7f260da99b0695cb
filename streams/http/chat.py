"""Acting from the chat card: the DingTalk, WeCom and Feishu card callbacks, and the bindings of chat user ids
to accounts.

``POST /api/chat/<app>/callback`` is called by the chat app, not by a signed-in person: it is proved by the
callback's signature and encryption as the app documents it (handlers/chat_cards.py), then mapped to a person
through the binding an admin set (``PUT /api/chat-bindings/<app>/<chat user id> {"user_id"}``). The press is
that person's ticket command, with a client id made from the card and the button: the app delivering it again
is applied once (streams/http/api.py command_event_id). Once applied, the worker updates the card in place to
show who took it. A refused press changes nothing and gets the app's own error answer.
"""
from __future__ import annotations

import logging
import os
import re

from faust import web
from pydantic import Field

from handlers import chat_cards as cc
from handlers.lifecycle import Conflict, check
from handlers.permissions import Can, may_act
from schemas.accounts import UserId
from schemas.records import TicketEvent
from streams.http.api import (ApiError, Body, CommandRefused, JsonView, Principal, command_event_id, read_body,
                              validate, with_event)

log = logging.getLogger("soc.chat")
MAX_CALLBACK_BYTES = 64 * 1024
CHAT_USER_ID = re.compile(r"[A-Za-z0-9_.@-]{1,64}")


class BindBody(Body):
    user_id: UserId


class ClaimBody(Body):
    code: str = Field(pattern=r"^[A-Z0-9]{8}$")


def _vendor(name: str) -> cc.ChatVendor:
    if name not in cc.ChatVendor.__members__:
        raise ApiError(404, f"no chat app {name!r}; apps: {', '.join(cc.ChatVendor.__members__)}")
    return cc.ChatVendor(name)


class Bindings(JsonView):
    async def get(self, request: web.Request) -> web.Response:
        (await self.http.authenticate(request)).require(Can.manage_users)
        bindings = self.http.chat_bindings
        return self.json({vendor.value: [{"chat_user_id": chat, "user_id": user}
                                         for chat, user in sorted((await bindings.all(vendor)).items())]
                          for vendor in cc.ChatVendor})


class Binding(JsonView):
    async def _target(self, request: web.Request, vendor: str, chat_user_id: str):
        who = await self.http.authenticate(request)
        who.require(Can.manage_users)
        app = _vendor(vendor)
        if not CHAT_USER_ID.fullmatch(chat_user_id):
            raise ApiError(422, "a chat user id is 1 to 64 letters, digits and _ . @ -")
        return who, app

    async def put(self, request: web.Request, vendor: str, chat_user_id: str) -> web.Response:
        who, app = await self._target(request, vendor, chat_user_id)
        body = validate(BindBody, await self.http.read_json(request))
        if await self.http.accounts.get(body.user_id) is None:
            raise ApiError(404, f"no user {body.user_id}")
        await self.http.chat_bindings.bind(app, chat_user_id, body.user_id)
        self.http.audit(request, "users", "chat.bind", who, target=body.user_id, detail=f"{app.value} {chat_user_id}")
        return self.json({"vendor": app.value, "chat_user_id": chat_user_id, "user_id": body.user_id})

    async def delete(self, request: web.Request, vendor: str, chat_user_id: str) -> web.Response:
        who, app = await self._target(request, vendor, chat_user_id)
        if not await self.http.chat_bindings.unbind(app, chat_user_id):
            raise ApiError(404, f"{chat_user_id} is not bound on {app.value}")
        self.http.audit(request, "users", "chat.unbind", who, target=chat_user_id, detail=app.value)
        return self.json({"vendor": app.value, "chat_user_id": chat_user_id, "unbound": True})


VENDOR_TEXT = {cc.ChatVendor.dingtalk: "钉钉", cc.ChatVendor.wecom: "企业微信", cc.ChatVendor.feishu: "飞书"}


# The errcode of a press by someone not bound to an account: its message carries the code that binds them.
UNBOUND = 900020


def logged(refused: cc.Refused) -> str:
    """A refusal's words as the log keeps them: an unbound person's binding code is theirs alone."""
    return "the chat user is not bound to an account" if refused.errcode == UNBOUND else refused.errmsg


class CardCallback(JsonView):
    """What a press does, whichever app it came from: the bound person's command, applied once, then the
    app's card updated to show who took it (`app.took`)."""

    vendor: cc.ChatVendor

    async def _press(self, request: web.Request, app, press: cc.Press) -> None:
        http, vendor = self.http, self.vendor
        user_id = await http.chat_bindings.account(vendor, press.user_id)
        user = await http.accounts.get(user_id) if user_id else None
        if user is None or user.disabled:
            code = await http.chat_bindings.offer(vendor, press.user_id)
            raise cc.Refused(403, UNBOUND, f"{VENDOR_TEXT[vendor]}账号未绑定工单系统账号：请登录工单系统，用绑定码 {code} "
                                          f"绑定（10分钟内有效），或联系管理员绑定")
        who = Principal(user.actor(), "token", http.config, holds=tuple(user.holds))
        kind = cc.TICKET_ACTION[press.action]
        ticket = await http.store.get(press.ticket_id)
        if ticket is None or not who.can_see(ticket) or not may_act(who.role, kind):
            raise cc.Refused(403, 900021, "无权处理此工单")
        event_id = command_event_id(who, cc.client_id(press))

        def audit(outcome: str, detail: str = "") -> None:
            http.audit(request, "action", f"ticket.{kind.value}", who, target=ticket.ticket_id, outcome=outcome,
                       detail=f"{vendor.value} card {detail}".strip())

        if not any(h.event_id == event_id for h in ticket.history):
            event = TicketEvent(event_id=event_id, ticket_id=ticket.ticket_id, action=kind, by=who.actor.name,
                                actor=who.department, user=who.actor, holds=list(who.holds), at=http.clock(),
                                note=f"{VENDOR_TEXT[vendor]}卡片{cc.ACTION_TEXT[press.action]}")
            try:
                check(http.config, ticket, event)
            except Conflict as conflict:
                audit("refused", str(conflict))
                raise cc.Refused(409, 900022, f"工单当前无法{cc.ACTION_TEXT[press.action]}：{conflict}") from None
            http.pipeline.send_command(event, ticket.dedup_key)
            await self._applied(ticket.ticket_id, event_id)
            audit("ok")
        else:
            audit("replayed")  # the app delivered the press again: applied once, the card updated again
        # The card shows who took it; the entry's own time and name, so that every update says the same.
        current = await http.store.get(ticket.ticket_id)
        entry = next((h for h in current.history if h.event_id == event_id), None) if current else None
        if entry is not None:
            department = http.config.district.departments.get(who.department)
            error = await app.took(press, current, user.name, department.name if department else who.department,
                                   entry.at.astimezone(http.config.district.tz).strftime("%m-%d %H:%M"))
            if error:
                log.warning("chat card not updated", extra={"vendor": vendor.value, "ticket_id": ticket.ticket_id,
                                                             "error": error})

    async def _applied(self, ticket_id: str, event_id: str) -> None:
        """Wait for the owning worker to apply the press (the app waits a few seconds for the answer)."""
        try:
            await self.http.applied(lambda: with_event(self.http, ticket_id, event_id), event_id)
        except CommandRefused as refused:
            raise cc.Refused(409, 900022, f"工单当前无法处理：{refused.reason}") from None


class Claim(JsonView):
    """POST /api/chat-bindings/claim {"code"}: the signed-in person binds the chat user who was given the code
    (the answer to their own press on a card) to their own account."""

    async def post(self, request: web.Request) -> web.Response:
        who = await self.http.authenticate(request)
        if who.credential not in ("session", "token"):
            raise ApiError(403, "a binding is a person's: sign in as yourself")
        body = validate(ClaimBody, await self.http.read_json(request))
        claimed = await self.http.chat_bindings.claim(body.code)
        if claimed is None:
            raise ApiError(404, "no such binding code, or it has expired: press the card's button again")
        vendor, chat_user_id = claimed
        await self.http.chat_bindings.bind(vendor, chat_user_id, who.actor.user_id)
        self.http.audit(request, "users", "chat.claim", who, target=who.actor.user_id,
                        detail=f"{vendor.value} {chat_user_id}")
        return self.json({"vendor": vendor.value, "chat_user_id": chat_user_id, "user_id": who.actor.user_id})


class DingTalkCallback(CardCallback):
    vendor = cc.ChatVendor.dingtalk

    async def post(self, request: web.Request) -> web.Response:
        app = self.http.dingtalk
        if app is None:
            raise ApiError(404, "DingTalk cards are not configured (SOC_DINGTALK_* settings)")
        body = await read_body(request, MAX_CALLBACK_BYTES)
        query = request.rel_url.query
        try:
            event = app.crypto.open_dingtalk(query, body, int(self.http.clock().timestamp() * 1000))
            if not cc.is_url_check(event):
                await self._press(request, app, cc.press_of(event))
        except cc.Refused as refused:
            log.warning("dingtalk callback refused", extra={"errcode": refused.errcode, "error": logged(refused)})
            return self.json(refused.body(), status=refused.status)
        return self.json(app.crypto.answer(cc.SUCCESS, query["timestamp"], query["nonce"], os.urandom(16)))


class WeComCallback(CardCallback):
    """WeCom checks the URL with a GET (the decrypted echostr answered as text) and posts each event; an
    answer of 200 with an empty body is WeCom's "received" (no passive reply). WeCom shows the presser
    nothing of an answer, and sends again what was not answered 200: a press by someone unbound or not
    allowed is answered as received, and the person is told why in a message of the app (an unbound one
    gets their binding code there, and only there)."""

    vendor = cc.ChatVendor.wecom

    def _app(self):
        if self.http.wecom is None:
            raise ApiError(404, "WeCom cards are not configured (SOC_WECOM_* settings)")
        return self.http.wecom

    async def get(self, request: web.Request) -> web.Response:
        app = self._app()
        try:
            echo = app.crypto.wecom_url_echo(request.rel_url.query, int(self.http.clock().timestamp()))
        except cc.Refused as refused:
            return self.json(refused.body(), status=refused.status)
        return self.bytes(echo.encode("utf-8"), content_type="text/plain")

    async def post(self, request: web.Request) -> web.Response:
        app = self._app()
        body = await read_body(request, MAX_CALLBACK_BYTES)
        try:
            event = app.crypto.open_wecom(request.rel_url.query, body, int(self.http.clock().timestamp()))
            press = cc.wecom_press_of(event)
        except cc.Refused as refused:
            log.warning("wecom callback refused", extra={"error": refused.errmsg})
            return self.json(refused.body(), status=refused.status)
        try:
            await self._press(request, app, press)
        except cc.Refused as refused:
            error = await app.tell(press.user_id, refused.errmsg)
            log.warning("wecom press refused", extra={"errcode": refused.errcode, "refused": logged(refused),
                                                      "ticket_id": press.ticket_id, "told": error is None,
                                                      "error": error})
        return self.bytes(b"", content_type="text/plain")


class FeishuCallback(CardCallback):
    """Feishu's card.action.trigger (and its url_verification): refused requests that are not Feishu's get a
    4xx; a press by someone unbound or not allowed gets Feishu's error toast, HTTP 200 as Feishu expects."""

    vendor = cc.ChatVendor.feishu

    async def post(self, request: web.Request) -> web.Response:
        app = self.http.feishu
        if app is None:
            raise ApiError(404, "Feishu cards are not configured (SOC_FEISHU_* settings)")
        body = await read_body(request, MAX_CALLBACK_BYTES)
        try:
            event = app.crypto.open_feishu(request.headers, body, int(self.http.clock().timestamp()))
        except cc.Refused as refused:
            log.warning("feishu callback refused", extra={"error": refused.errmsg})
            return self.json(refused.body(), status=refused.status)
        if event.get("type") == "url_verification":
            return self.json({"challenge": event.get("challenge", "")})
        try:
            press = cc.feishu_press_of(event)
            await self._press(request, app, press)
        except cc.Refused as refused:
            if refused.status == 400:
                return self.json(refused.body(), status=400)
            return self.json(cc.feishu_toast("error", refused.errmsg))
        return self.json(cc.feishu_toast("success", f"已{cc.ACTION_TEXT[press.action]}"))


ROUTES = [
    ("/api/chat/dingtalk/callback", "chat-dingtalk-callback", DingTalkCallback),
    ("/api/chat/wecom/callback", "chat-wecom-callback", WeComCallback),
    ("/api/chat/feishu/callback", "chat-feishu-callback", FeishuCallback),
    ("/api/chat-bindings", "chat-bindings", Bindings),
    ("/api/chat-bindings/claim", "chat-binding-claim", Claim),
    ("/api/chat-bindings/{vendor}/{chat_user_id}", "chat-binding", Binding),
]
