"""The notifier: ticket changes in, messages out, on its own agent and timer.

    soc.tickets --notify_ticket_changes--> Redis outbox per channel --send_notifications (timer)--> vendors
                                                                               └-> notification log, soc.deadletter

Queueing (``Notifier.take``) reads the notifier's known deliveries before it queues: a replayed ticket
queues nothing twice. Sending (``Notifier.send_due``) takes a channel's lease, sends what is ready within
the vendor's rate limit (several at once as one digest), and only after the vendor's answer writes the
log entries and takes the deliveries off the queue. Ticket processing never waits on a channel: the
ticket step only publishes to soc.tickets.
"""
from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import unquote, urlsplit

import aiohttp
from redis.exceptions import RedisError

from handlers import notify
from handlers.notify_channels import delivery_failed
from handlers.privacy import mask_personal
from schemas.enums import Severity
from schemas.notify import Delivery, LogEntry
from schemas.records import DeadLetter, Ticket
from streams.chat_cards import DingTalkApp, FeishuApp, WeComApp
from streams.metrics import Metrics
from streams.notify_store import NotificationStore, millis
from streams.store import until_written

log = logging.getLogger("soc.notify")
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

# Deliveries one send takes from a channel's queue at most (the rest go in the next digest).
MAX_BATCH = 500
# One pass over a channel ends within this (sends are cut off at delivery.timeout_s, at most 10 s, plus
# Redis); the lease outlives it, so no other worker sends for the channel while a pass is under way.
PASS_DEADLINE_S = 25.0
LEASE_TTL = timedelta(seconds=30)
# The log and the known deliveries are kept this long (longer than ticket retention, 30 days).
HORIZON = timedelta(days=60)


@dataclass(frozen=True)
class Answer:
    """The vendor's answer to one send: `error` when it was not taken, `note` when it was with a caveat
    (a WeCom mention that did not go)."""

    error: str | None = None
    note: str = ""


class Notifier:
    def __init__(self, rules: notify.Rules, store: NotificationStore, clock: Callable[[], datetime],
                 metrics: Metrics, dead_letter: Callable[[DeadLetter], None], cards: DingTalkApp | None = None,
                 wecom: WeComApp | None = None, feishu: FeishuApp | None = None):
        self.rules, self.store, self.clock, self.metrics = rules, store, clock, metrics
        self.dead_letter = dead_letter
        # The apps that send the card channels' cards, by channel type (SOC_DINGTALK_*, SOC_WECOM_*, SOC_FEISHU_*).
        self.card_apps = {"dingtalk_card": cards, "wecom_card": wecom, "feishu_card": feishu}
        self.owner = uuid.uuid4().hex  # this process, as a lease holder
        self._session: aiohttp.ClientSession | None = None
        self._passes: dict[str, asyncio.Task] = {}

    # ------------------------------------------------------------ queueing

    async def take(self, tickets: list[Ticket]) -> int:
        """Queue the deliveries of these ticket versions that are not known yet; how many were new.
        Waits for Redis like the ticket step does: Kafka keeps the records meanwhile."""
        now = self.clock()
        stale = timedelta(seconds=self.rules.delivery.give_up_after_s)
        items: dict[str, tuple] = {}
        for ticket in tickets:
            for delivery in notify.deliveries(self.rules, ticket, now - HORIZON):
                # A change first seen after the give-up age (a notifier deployed onto old tickets, an
                # outage longer than that) is logged as expired, not pushed: the inbox has it.
                result = "muted" if delivery.muted else "expired" if now - delivery.at > stale else "queued"
                ready = notify.ready_at(self.rules.grouping, delivery) if result == "queued" else None
                items[delivery.id] = (delivery, ready, self._entry(delivery, now, result))
        added = await until_written(lambda: self.store.enqueue(list(items.values()), now))
        for delivery, _, entry in items.values():
            if delivery.id in added:
                self._count(delivery, entry.result)
        return len(added)

    # ------------------------------------------------------------ sending

    async def send_due(self) -> None:
        """Start a pass for each channel whose last pass is over: channels run side by side, so a slow or
        dead one never holds up the others (nor this timer)."""
        for channel in self.rules.channels.values():
            running = self._passes.get(channel.id)
            if running is not None and not running.done():
                continue
            self._passes[channel.id] = asyncio.ensure_future(self._pass(channel))

    async def passes_done(self) -> None:
        """Wait for the passes under way (tests step the sender pass by pass)."""
        await asyncio.gather(*self._passes.values())

    async def _pass(self, channel: notify.Channel) -> None:
        try:
            if await self.store.lease(channel.id, self.owner, LEASE_TTL):
                await asyncio.wait_for(self._send_channel(channel), PASS_DEADLINE_S)
                self.metrics.notifications_pending.labels(channel.id).set(await self.store.pending(channel.id))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # tried again at the next tick; never takes the app down
            self.metrics.timer_errors.labels("send_notifications").inc()
            log.warning("notifier pass failed", extra={"channel": channel.id, "error": f"{type(exc).__name__}: {exc}"})

    async def _send_channel(self, channel: notify.Channel) -> None:
        now = self.clock()
        state = await self.store.channel_state(channel.id)
        if millis(now) < int(state.get("next_try_ms", 0)):
            return
        ready = await self.store.ready(channel.id, now, MAX_BATCH)
        if not ready:
            return
        attempts = dict(zip((d.id for d in ready), await self.store.attempts([d.id for d in ready])))
        last_group = int(state.get("last_group_ms", 0))
        plan = notify.plan_send(ready, attempts, now, self.rules.delivery, self.rules.grouping,
                                EPOCH + timedelta(milliseconds=last_group) if last_group else None)
        if plan.give_up:
            await self._give_up(channel, list(plan.give_up), attempts, state.get("last_error") or "failed", now)
        batch = list(plan.send)
        if channel.type in notify.CARD_CHANNELS:
            batch = batch[:1]  # one card per ticket change (its buttons act on that ticket); the rest next pass
        if not batch:
            return
        requests = notify.requests_needed(channel, batch)
        windows = tuple(w for w, _ in notify.RATE_LIMITS.get(channel.type, ()))
        if not notify.within_limits(channel.type, await self.store.sent_within(channel.robot, now, windows), requests):
            return
        if channel.type in notify.CARD_CHANNELS:
            out, answer = await self._send_card(channel, batch[0])
        else:
            out = notify.outgoing(channel, batch, self.rules, now)
            answer = await self._deliver(channel, out)
        await self.store.record_sent(channel.robot, now, len(out.http) or 1, keep_s=60)
        done = self.clock()
        result = "failed" if answer.error else "delivered"
        entries = [self._entry(d, done, result, attempt=attempts[d.id] + 1, error=answer.error or answer.note,
                               message_id=out.message_id, merged=len(batch)) for d in batch]
        if answer.error is None:
            await self.store.log(entries, done=batch)
            fields = {"failures": 0, "next_try_ms": 0, "last_error": ""}
            if any(d.severity is not Severity.red for d in batch):
                fields["last_group_ms"] = millis(now)
            await self.store.set_channel_state(channel.id, **fields)
            for delivery in batch:
                self._count(delivery, "delivered")
                self.metrics.notification_latency.labels(channel.type).observe(
                    max((done - delivery.at).total_seconds(), 0.0))
            log.info("notification sent", extra={"channel": channel.id, "message_id": out.message_id,
                                                  "deliveries": len(batch), "note": answer.note})
            return
        await self.store.log(entries)
        failures = int(state.get("failures", 0)) + 1
        wait = notify.backoff_s(self.rules.delivery, failures)
        await self.store.set_channel_state(channel.id, failures=failures, last_error=answer.error,
                                           next_try_ms=millis(now + timedelta(seconds=wait)))
        for delivery in batch:
            self._count(delivery, "failed")
        log.warning("notification failed; retrying", extra={"channel": channel.id, "error": answer.error,
                                                             "retry_in_s": wait, "deliveries": len(batch)})

    async def _give_up(self, channel: notify.Channel, expired: list[Delivery], attempts: dict[str, int], error: str,
                       now: datetime) -> None:
        for delivery in expired:
            age = (now - delivery.at).total_seconds()
            raw = mask_personal(delivery.model_dump_json())
            self.dead_letter(DeadLetter(
                source_topic="soc.tickets", partition=None, offset=None, received_at=now,
                error_type="notification_undeliverable",
                message=mask_personal(f"channel {channel.id} ({channel.type}): {error}; {attempts[delivery.id]} "
                                    f"attempts, given up after {age:.0f} s"),
                raw_text=raw, raw_size=len(raw.encode())))
            self._count(delivery, "dead")
        # Handed to the producer before the queue forgets them: a crash here repeats a dead letter.
        await self.store.log([self._entry(d, now, "dead", attempt=attempts[d.id], error=error) for d in expired],
                             done=expired)
        log.error("notifications given up: dead-lettered", extra={"channel": channel.id, "error": error,
                                                                  "deliveries": len(expired)})

    async def _send_card(self, channel: notify.Channel, delivery: Delivery) -> tuple[notify.Outgoing, Answer]:
        app = self.card_apps[channel.type]
        if app is None:
            return notify.Outgoing(delivery.notification_id), Answer(f"the chat app for {channel.type} is not set")
        try:
            token = await app.access_token()
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            return notify.Outgoing(delivery.notification_id), Answer(notify.scrub(f"{type(exc).__name__}: {exc}"))
        if channel.type == "dingtalk_card":
            request = notify.card_request(channel, delivery, api_url=app.api_url, robot_code=app.app_key,
                                          access_token=token)
        elif channel.type == "wecom_card":
            request = notify.wecom_card_request(channel, delivery, api_url=app.api_url, agent_id=app.agent_id,
                                                access_token=token)
        else:
            request = notify.feishu_card_request(channel, delivery, api_url=app.api_url, access_token=token)
        out = notify.Outgoing(delivery.notification_id, http=(request,))
        return out, await self._deliver(channel, out)

    async def _deliver(self, channel: notify.Channel, out: notify.Outgoing) -> Answer:
        timeout = self.rules.delivery.timeout_s
        if out.email is not None:
            try:
                # smtplib's own timeout bounds each step; the thread cannot be cancelled, so it is not raced.
                await asyncio.to_thread(send_email, channel, out.email, timeout)
                return Answer()
            except (OSError, smtplib.SMTPException) as exc:
                return Answer(notify.scrub(f"smtp: {type(exc).__name__}: {exc}"))
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        deadline = aiohttp.ClientTimeout(total=timeout / len(out.http))
        for n, request in enumerate(out.http):
            try:
                async with self._session.request(request.method, request.url, headers=request.headers,
                                                 data=request.body, timeout=deadline) as response:
                    error = delivery_failed(channel.type, response.status, await response.read())
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                error = notify.scrub(f"{type(exc).__name__}: {exc}".rstrip(": "))
            if error and n == 0:
                return Answer(error)
            if error:
                # The message went; only its follow-up (the WeCom mention) did not: not sent again.
                return Answer(note=f"mention not delivered: {error}")
        return Answer()

    async def close(self) -> None:
        for task in self._passes.values():
            task.cancel()
        await asyncio.gather(*self._passes.values(), return_exceptions=True)
        for channel in self.rules.channels.values():
            try:
                await self.store.release(channel.id, self.owner)
            except (RedisError, OSError):
                pass  # the lease then runs out by itself
        if self._session is not None:
            await self._session.close()
        for app in self.card_apps.values():
            if app is not None:
                await app.close()

    # ------------------------------------------------------------ records

    def _entry(self, delivery: Delivery, at: datetime, result: str, **kw) -> LogEntry:
        return LogEntry(at=at, delivery_id=delivery.id, ticket_id=delivery.ticket_id, channel=delivery.channel,
                        channel_type=self.rules.channels[delivery.channel].type, event=delivery.event,
                        severity=delivery.severity, result=result, departments=delivery.departments, **kw)

    def _count(self, delivery: Delivery, result: str) -> None:
        self.metrics.notifications.labels(self.rules.channels[delivery.channel].type, delivery.event, result).inc()


def send_email(channel: notify.Channel, message, timeout: float) -> None:
    """SMTP (smtp://user@host:587, STARTTLS whenever the server offers it) or SMTPS (smtps://host:465)."""
    url = urlsplit(channel.url)
    secure = url.scheme == "smtps"
    port = url.port or (465 if secure else 587)
    context = ssl.create_default_context()
    smtp = (smtplib.SMTP_SSL(url.hostname, port, timeout=timeout, context=context) if secure
            else smtplib.SMTP(url.hostname, port, timeout=timeout))
    with smtp:
        smtp.ehlo()
        if not secure and smtp.has_extn("starttls"):
            smtp.starttls(context=context)
            smtp.ehlo()
        if url.username and channel.secret:
            smtp.login(unquote(url.username), channel.secret)
        smtp.send_message(message)
