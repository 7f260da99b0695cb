"""The chat cards' I/O: who a chat user is (bindings in Redis) and the DingTalk, WeCom and Feishu apps that update a card.

- ``<prefix>:chat:binding:<vendor>`` (hash, the vendor's user id -> our account's user id): set by an admin
  (``PUT /api/chat-bindings/<vendor>/<chat user id>``), or by the person: a press by a user id not in it
  changes nothing and answers a binding code (``<prefix>:chat:claim:<code>``, 10 minutes) that the person,
  signed in, claims (``POST /api/chat-bindings/claim``): only the one who pressed sees the code.
- ``DingTalkApp``, ``WeComApp``, ``FeishuApp``: each app's access token (kept until a minute before it
  expires) and its card update in place, against the app's API URL (``SOC_*_API_URL``); the notifier sends
  the cards with the same clients.
"""
from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import quote

import aiohttp
import redis.asyncio as aioredis

from handlers import chat_cards as cc
from handlers.notify_channels import SEVERITY_SHORT, Message
from handlers.privacy import mask_personal

TIMEOUT = aiohttp.ClientTimeout(total=5)
# Binding codes: 8 characters without look-alikes (0/O, 1/I/L), good for 10 minutes and once.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CLAIM_TTL_S = 600


class ChatBindings:
    def __init__(self, client: aioredis.Redis, prefix: str):
        self.redis, self.prefix = client, prefix

    def _key(self, vendor: cc.ChatVendor) -> str:
        return f"{self.prefix}:chat:binding:{vendor.value}"

    async def account(self, vendor: cc.ChatVendor, chat_user_id: str) -> str | None:
        raw = await self.redis.hget(self._key(vendor), chat_user_id)
        return raw.decode() if raw is not None else None

    async def bind(self, vendor: cc.ChatVendor, chat_user_id: str, user_id: str) -> None:
        await self.redis.hset(self._key(vendor), chat_user_id, user_id)

    async def unbind(self, vendor: cc.ChatVendor, chat_user_id: str) -> bool:
        return bool(await self.redis.hdel(self._key(vendor), chat_user_id))

    async def offer(self, vendor: cc.ChatVendor, chat_user_id: str) -> str:
        """A one-time code that binds this chat user to whoever signed in claims it within CLAIM_TTL_S."""
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(8))
        await self.redis.set(f"{self.prefix}:chat:claim:{code}", f"{vendor.value}\n{chat_user_id}", ex=CLAIM_TTL_S)
        return code

    async def claim(self, code: str) -> tuple[cc.ChatVendor, str] | None:
        raw = await self.redis.getdel(f"{self.prefix}:chat:claim:{code}")
        if raw is None:
            return None
        vendor, chat_user_id = raw.decode().split("\n", 1)
        return cc.ChatVendor(vendor), chat_user_id

    async def all(self, vendor: cc.ChatVendor) -> dict[str, str]:
        return {k.decode(): v.decode() for k, v in (await self.redis.hgetall(self._key(vendor))).items()}


class VendorApi:
    """What the three apps share against their vendor's API: one session, made when first needed, calls that
    answer (status, the JSON object or {}), and the access token kept until a minute before it expires."""

    def __init__(self):
        self._session: aiohttp.ClientSession | None = None
        self._token: tuple[str, float] | None = None  # (access token, monotonic time it is good until)
        self._lock = asyncio.Lock()

    async def call(self, request) -> tuple[int, dict]:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=TIMEOUT)
        async with self._session.request(request.method, request.url, headers=request.headers,
                                         data=request.body or None) as response:
            try:
                answer = await response.json(content_type=None)
            except ValueError:
                answer = None
            return response.status, answer if isinstance(answer, dict) else {}

    async def token(self, fetch: Callable[[], Awaitable[tuple[str, int]]]) -> str:
        """The kept token, else `fetch`'s (token, seconds it is good for); one fetch at a time."""
        async with self._lock:
            if self._token is None or time.monotonic() >= self._token[1]:
                token, expires = await fetch()
                self._token = (token, time.monotonic() + max(expires - 60, 0))
            return self._token[0]

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


@dataclass
class DingTalkApp:
    crypto: cc.CallbackCrypto
    app_key: str
    app_secret: str
    api_url: str
    api: VendorApi = field(default_factory=VendorApi)

    @classmethod
    def from_settings(cls, settings) -> DingTalkApp | None:
        """The app when all four of its settings are set, else None (the callback then answers 404)."""
        parts = (settings.dingtalk_app_key, settings.dingtalk_app_secret, settings.dingtalk_callback_token,
                 settings.dingtalk_callback_aes_key)
        if not all(parts):
            return None
        crypto = cc.CallbackCrypto(settings.dingtalk_callback_token.get_secret_value(),
                                   settings.dingtalk_callback_aes_key.get_secret_value(), settings.dingtalk_app_key)
        return cls(crypto, settings.dingtalk_app_key, settings.dingtalk_app_secret.get_secret_value(),
                   settings.dingtalk_api_url)

    async def access_token(self) -> str:
        async def fetch() -> tuple[str, int]:
            status, answer = await self.api.call(cc.access_token_request(self.api_url, self.app_key, self.app_secret))
            token, expires = answer.get("accessToken"), answer.get("expireIn")
            if status != 200 or not isinstance(token, str) or not isinstance(expires, int):
                raise OSError(f"DingTalk access token refused: HTTP {status} {answer.get('code', '')}")
            return token, expires
        return await self.api.token(fetch)

    async def update_card(self, track_id: str, params: dict[str, str]) -> str | None:
        """None once DingTalk took the update, else why not (logged by the caller; the press stands)."""
        try:
            token = await self.access_token()
            status, answer = await self.api.call(cc.update_card_request(self.api_url, token, track_id, params))
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}"
        if status != 200 or answer.get("success") is False:
            return f"HTTP {status} {answer.get('code', '')}".strip()
        return None

    async def took(self, press: cc.Press, ticket, name: str, department: str, at_local: str) -> str | None:
        return await self.update_card(press.out_track_id,
                                      cc.taken_params(press.ticket_id, press.action, name, department, at_local))

    async def close(self) -> None:
        await self.api.close()


@dataclass
class WeComApp:
    """The WeCom self-built app (自建应用) whose template cards carry the buttons: its token (GET
    /cgi-bin/gettoken, kept until a minute before it expires), card send and card update."""

    crypto: cc.CallbackCrypto
    corp_id: str
    secret: str
    agent_id: int
    api_url: str
    api: VendorApi = field(default_factory=VendorApi)

    @classmethod
    def from_settings(cls, settings) -> WeComApp | None:
        parts = (settings.wecom_corp_id, settings.wecom_corp_secret, settings.wecom_agent_id,
                 settings.wecom_callback_token, settings.wecom_callback_aes_key)
        if not all(p is not None and p != "" for p in parts):
            return None
        crypto = cc.CallbackCrypto(settings.wecom_callback_token.get_secret_value(),
                                   settings.wecom_callback_aes_key.get_secret_value(), settings.wecom_corp_id)
        return cls(crypto, settings.wecom_corp_id, settings.wecom_corp_secret.get_secret_value(),
                   settings.wecom_agent_id, settings.wecom_api_url)

    async def access_token(self) -> str:
        async def fetch() -> tuple[str, int]:
            status, answer = await self.api.call(cc.wecom_token_request(self.api_url, self.corp_id, self.secret))
            token, expires = answer.get("access_token"), answer.get("expires_in")
            if answer.get("errcode") != 0 or not isinstance(token, str) or not isinstance(expires, int):
                raise OSError(f"WeCom access token refused: HTTP {status} errcode {answer.get('errcode')}")
            return token, expires
        return await self.api.token(fetch)

    async def took(self, press: cc.Press, ticket, name: str, department: str, at_local: str) -> str | None:
        """The card's buttons replaced by who took it (WeCom's update_template_card with the press's code)."""
        try:
            token = await self.access_token()
            status, answer = await self.api.call(cc.wecom_update_request(
                self.api_url, token, agent_id=self.agent_id, response_code=press.response_code,
                replace_name=f"{name} 已{cc.ACTION_TEXT[press.action]}"))
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}"
        return None if answer.get("errcode") == 0 else f"HTTP {status} errcode {answer.get('errcode')}"

    async def tell(self, user_id: str, text: str) -> str | None:
        """A text message of the app to one person; the error, if it was not sent."""
        try:
            token = await self.access_token()
            status, answer = await self.api.call(cc.wecom_text_request(self.api_url, token, agent_id=self.agent_id,
                                                                      to_user=user_id, text=text))
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}"
        return None if answer.get("errcode") == 0 else f"HTTP {status} errcode {answer.get('errcode')}"

    async def close(self) -> None:
        await self.api.close()


@dataclass
class FeishuApp:
    """The Feishu app (自建应用) whose message cards carry the buttons: its tenant_access_token (kept until a
    minute before it expires), card send and card update (PATCH of the shared card)."""

    crypto: cc.FeishuCrypto
    app_id: str
    app_secret: str
    api_url: str
    inbox_url: str
    api: VendorApi = field(default_factory=VendorApi)

    @classmethod
    def from_settings(cls, settings) -> FeishuApp | None:
        parts = (settings.feishu_app_id, settings.feishu_app_secret, settings.feishu_verification_token,
                 settings.feishu_encrypt_key)
        if not all(parts):
            return None
        crypto = cc.FeishuCrypto(settings.feishu_encrypt_key.get_secret_value(),
                                 settings.feishu_verification_token.get_secret_value())
        return cls(crypto, settings.feishu_app_id, settings.feishu_app_secret.get_secret_value(),
                   settings.feishu_api_url, settings.public_url)

    async def access_token(self) -> str:
        async def fetch() -> tuple[str, int]:
            status, answer = await self.api.call(cc.feishu_token_request(self.api_url, self.app_id, self.app_secret))
            token, expires = answer.get("tenant_access_token"), answer.get("expire")
            if answer.get("code") != 0 or not isinstance(token, str) or not isinstance(expires, int):
                raise OSError(f"Feishu tenant_access_token refused: HTTP {status} code {answer.get('code')}")
            return token, expires
        return await self.api.token(fetch)

    async def took(self, press: cc.Press, ticket, name: str, department: str, at_local: str) -> str | None:
        """The shared card replaced by one that says who took it, its 查看 kept."""
        message = Message(id=ticket.ticket_id, event="dispatched", severity=ticket.severity,
                          title=f"【{SEVERITY_SHORT[ticket.severity]}】{mask_personal(ticket.title)}",
                          fields=[("工单号", ticket.ticket_id)],
                          link=f"{self.inbox_url.rstrip('/')}/inbox#ticket={quote(ticket.ticket_id, safe='')}")
        taken = f"{name}（{department}）{at_local} {cc.ACTION_TEXT[press.action]}"
        try:
            token = await self.access_token()
            status, answer = await self.api.call(cc.feishu_update_request(
                self.api_url, token, press.out_track_id, cc.feishu_card(message, ticket.ticket_id, taken)))
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            return f"{type(exc).__name__}: {exc}"
        return None if answer.get("code") == 0 else f"HTTP {status} code {answer.get('code')}"

    async def close(self) -> None:
        await self.api.close()
