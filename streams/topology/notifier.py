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
from datetime import datetime, timedelta
from urllib.parse import unquote, urlsplit

import aiohttp

from handlers import notify
from handlers.notify_channels import delivery_failed
from handlers.privacy import mask_phones
from schemas.enums import Severity
from schemas.notify import Delivery, LogEntry
from schemas.records import DeadLetter, Ticket
from streams.metrics import Metrics
from streams.notify_store import NotificationStore, millis

log = logging.getLogger("soc.notify")

# Deliveries one send takes from a channel's queue at most (the rest go in the next digest).
MAX_BATCH = 500
# A worker that stops renewing its lease loses the channel to another after this long: longer than
# one send can take (delivery.timeout_s is at most 10 s, SMTP gets 5 s more).
LEASE_TTL = timedelta(seconds=20)
# The log and the known deliveries are kept this long (longer than ticket retention, 30 days).
HORIZON = timedelta(days=60)


class Notifier:
    def __init__(self, rules: notify.Rules, store: NotificationStore, clock: Callable[[], datetime],
                 metrics: Metrics, dead_letter: Callable[[DeadLetter], None]):
        self.rules, self.store, self.clock, self.metrics = rules, store, clock, metrics
        self.dead_letter = dead_letter
        self.owner = uuid.uuid4().hex  # this process, as a lease holder
        self._session: aiohttp.ClientSession | None = None

    # ------------------------------------------------------------ queueing

    async def take(self, tickets: list[Ticket]) -> int:
        """Queue the deliveries of these ticket versions that are not known yet; how many were new."""
        now = self.clock()
        stale = timedelta(seconds=self.rules.delivery.give_up_after_s)
        items = []
        for ticket in tickets:
            for delivery in notify.deliveries(self.rules, ticket, now - HORIZON):
                # A change first seen after the give-up age (a notifier deployed onto old tickets, an
                # outage longer than that) is logged as expired, not pushed: the inbox has it.
                result = "muted" if delivery.muted else "expired" if now - delivery.at > stale else "queued"
                ready = notify.ready_at(self.rules.grouping, delivery) if result == "queued" else None
                items.append((delivery, ready, self._entry(delivery, now, result)))
        added = await self.store.enqueue(items, now)
        for delivery, ready, entry in items:
            if delivery.id in added:
                self._count(delivery, entry.result)
        return len(added)

    # ------------------------------------------------------------ sending

    async def send_due(self) -> None:
        """One pass over the channels this worker holds the lease of, side by side: a slow or dead
        channel does not hold up the others."""
        channels = list(self.rules.channels.values())
        results = await asyncio.gather(*(self._pass(c) for c in channels), return_exceptions=True)
        failures = [r for r in results if isinstance(r, Exception)]
        for channel, result in zip(channels, results):
            if isinstance(result, Exception):
                log.warning("notifier pass failed", extra={"channel": channel.id, "error": repr(result)})
        if failures:
            raise failures[0]  # counted by the guarded timer; the other channels' passes completed

    async def _pass(self, channel: notify.Channel) -> None:
        if await self.store.lease(channel.id, self.owner, LEASE_TTL):
            await self._send_channel(channel)
            self.metrics.notifications_pending.labels(channel.id).set(await self.store.pending(channel.id))

    async def _send_channel(self, channel: notify.Channel) -> None:
        now = self.clock()
        state = await self.store.channel_state(channel.id)
        if millis(now) < int(state.get("next_try_ms", 0)):
            return
        batch = await self.store.ready(channel.id, now, MAX_BATCH)
        if not batch:
            return
        policy = self.rules.delivery
        # Given up only after a failed attempt: a delivery that waited out a worker outage is still tried.
        tried = dict(zip((d.id for d in batch), await self.store.attempts([d.id for d in batch])))
        expired = [d for d in batch if tried[d.id] and (now - d.at).total_seconds() > policy.give_up_after_s]
        if expired:
            await self._give_up(channel, expired, state.get("last_error") or "failed", now)
            batch = [d for d in batch if d not in expired]
        # Red never waits; the rest go at most once per group interval, as one digest.
        group_interval_ms = int(self.rules.grouping.group_interval_s * 1000)
        if millis(now) < int(state.get("last_group_ms", 0)) + group_interval_ms:
            batch = [d for d in batch if d.severity is Severity.red]
        if not batch or not await self._within_limits(channel, now, notify.requests_needed(channel, batch)):
            return
        out = notify.outgoing(channel, batch, self.rules, now)
        attempts = [tried[d.id] for d in batch]
        error = await self._deliver(channel, out)
        await self.store.record_sent(channel.id, now, len(out.http) or 1, keep_s=60)
        done = self.clock()
        results = []
        for delivery, attempt in zip(batch, attempts):
            results.append(self._entry(delivery, done, "failed" if error else "delivered", attempt=attempt + 1,
                                       error=error or "", message_id=out.message_id, merged=len(batch)))
        if error is None:
            await self.store.log(results, done=batch)
            fields = {"failures": 0, "next_try_ms": 0, "last_error": ""}
            if any(d.severity is not Severity.red for d in batch):
                fields["last_group_ms"] = millis(now)
            await self.store.set_channel_state(channel.id, **fields)
            for delivery in batch:
                self._count(delivery, "delivered")
                self.metrics.notification_latency.labels(channel.type).observe(
                    max((done - delivery.at).total_seconds(), 0.0))
            log.info("notification sent", extra={"channel": channel.id, "message_id": out.message_id,
                                                  "deliveries": len(batch)})
            return
        await self.store.log(results)
        failures = int(state.get("failures", 0)) + 1
        wait = notify.backoff_s(policy, failures)
        await self.store.set_channel_state(channel.id, failures=failures, last_error=error,
                                           next_try_ms=millis(now + timedelta(seconds=wait)))
        for delivery in batch:
            self._count(delivery, "failed")
        log.warning("notification failed; retrying", extra={"channel": channel.id, "error": error,
                                                             "retry_in_s": wait, "deliveries": len(batch)})

    async def _within_limits(self, channel: notify.Channel, now: datetime, requests: int) -> bool:
        for window_s, most in notify.RATE_LIMITS.get(channel.type, ()):
            if await self.store.sent_within(channel.id, now, window_s) + requests > most:
                return False
        return True

    async def _give_up(self, channel: notify.Channel, expired: list[Delivery], error: str, now: datetime) -> None:
        attempts = await self.store.attempts([d.id for d in expired])
        entries = [self._entry(d, now, "dead", attempt=a, error=error) for d, a in zip(expired, attempts)]
        for delivery, attempt in zip(expired, attempts):
            age = (now - delivery.at).total_seconds()
            self.dead_letter(DeadLetter(
                source_topic="soc.tickets", partition=None, offset=None, received_at=now,
                error_type="notification_undeliverable",
                message=mask_phones(f"channel {channel.id} ({channel.type}): {error}; {attempt} attempts, "
                                    f"given up after {age:.0f} s"),
                raw_text=mask_phones(delivery.model_dump_json()), raw_size=len(delivery.model_dump_json())))
            self._count(delivery, "dead")
        # Handed to the producer before the queue forgets them: a crash here repeats a dead letter.
        await self.store.log(entries, done=expired)
        log.error("notifications given up: dead-lettered", extra={"channel": channel.id, "error": error,
                                                                  "deliveries": len(expired)})

    async def _deliver(self, channel: notify.Channel, out: notify.Outgoing) -> str | None:
        """None when the vendor took the message, else why not."""
        timeout = self.rules.delivery.timeout_s
        if out.email is not None:
            try:
                await asyncio.wait_for(asyncio.to_thread(send_email, channel, out.email, timeout), timeout + 5)
                return None
            except (OSError, smtplib.SMTPException, asyncio.TimeoutError) as exc:
                return f"smtp: {type(exc).__name__}: {exc}"[:300]
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout))
        for request in out.http:
            try:
                async with self._session.request(request.method, request.url, headers=request.headers,
                                                 data=request.body) as response:
                    error = delivery_failed(channel.type, response.status, await response.read())
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}"[:300] or type(exc).__name__
            if error:
                return error
        return None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

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
