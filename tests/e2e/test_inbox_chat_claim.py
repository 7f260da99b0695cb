"""Binding one's chat account from the inbox: the code an unbound press on a DingTalk card answered, typed into
the inbox's 绑定 form, binds that DingTalk user to the signed-in clerk; a code used or unknown is refused."""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis.asyncio as aioredis
from playwright.sync_api import expect

from handlers import chat_cards as cc
from streams.chat_cards import ChatBindings
from tests.support import marker, poll

pytestmark = pytest.mark.integration


def offer(pipeline, chat_user: str) -> str:
    """The code the worker answers an unbound press with (streams/chat_cards.py ChatBindings.offer)."""
    async def run() -> str:
        client = aioredis.from_url(pipeline.stack.redis_url)
        try:
            return await ChatBindings(client, pipeline.stack.redis_prefix).offer(cc.ChatVendor.dingtalk, chat_user)
        finally:
            await client.aclose()
    with ThreadPoolExecutor(1) as pool:  # a thread of its own: Playwright's sync API keeps a loop running
        return pool.submit(asyncio.run, run()).result()


def test_a_clerk_binds_their_dingtalk_account_with_the_code(pipeline, pages):
    clerk = pages.user("traffic_police")
    inbox = pages.inbox("traffic_police", user=clerk)
    chat_user = f"manager{marker()}"
    code = offer(pipeline, chat_user)

    inbox.click("#chat-claim summary")
    inbox.fill("#chat-code", code.lower())  # typed as it comes, any case
    inbox.click("#chat-claim-form button[type=submit]")
    expect(inbox.locator("#notice .message")).to_have_text(f"已绑定 钉钉 {chat_user}", timeout=10_000)
    bound = poll(lambda: pipeline.redis.hget(pipeline.key("chat", "binding", "dingtalk"), chat_user), 10, "the binding")
    assert bound.decode() == clerk

    # The same code again: refused on the page, the binding unchanged.
    inbox.fill("#chat-code", code)
    inbox.click("#chat-claim-form button[type=submit]")
    expect(inbox.locator("#error .message")).to_contain_text("binding code", timeout=10_000)
    assert pipeline.redis.hget(pipeline.key("chat", "binding", "dingtalk"), chat_user).decode() == clerk
