"""Rebuild the Redis projection from Kafka: soc.tickets is compacted and holds every ticket's
latest version, so Redis can always be thrown away and recomputed."""
from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from kafka import KafkaConsumer, TopicPartition

from schemas.config import load_config
from schemas.records import Ticket
from streams import topics
from streams.clock import utc_now
from streams.settings import Settings
from streams.store import TicketStore

log = logging.getLogger("soc.rebuild")
BATCH = 500


def latest_tickets(bootstrap: list[str], security: dict | None = None) -> dict[str, Ticket]:
    """Every ticket's highest version on soc.tickets, read from the beginning to the current end."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                             consumer_timeout_ms=5000, **(security or {}))
    try:
        partitions = [TopicPartition(topics.TICKETS, p) for p in sorted(consumer.partitions_for_topic(topics.TICKETS) or [])]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        end = consumer.end_offsets(partitions)
        latest: dict[str, Ticket] = {}
        remaining = {tp for tp in partitions if end[tp] > 0}
        while remaining:
            batch = consumer.poll(timeout_ms=2000)
            if not batch:
                if all(consumer.position(tp) >= end[tp] for tp in remaining):
                    break
                continue
            for tp, messages in batch.items():
                for message in messages:
                    if message.value is None:
                        continue
                    ticket = Ticket.model_validate_json(message.value)
                    known = latest.get(ticket.ticket_id)
                    if known is None or ticket.version > known.version:
                        latest[ticket.ticket_id] = ticket
                if consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
        return latest
    finally:
        consumer.close()


async def rebuild(settings: Settings, wipe: bool = True) -> int:
    tickets = latest_tickets(settings.bootstrap_servers, settings.kafka_client_kwargs())
    store = TicketStore.from_url(settings.redis_url, settings.redis_prefix, load_config(settings.config_dir))
    try:
        if wipe:
            keys = [k async for k in store.redis.scan_iter(f"{settings.redis_prefix}:*", count=1000)]
            for start in range(0, len(keys), BATCH):
                await store.redis.delete(*keys[start:start + BATCH])
        ordered = sorted(tickets.values(), key=lambda t: t.dispatched_at)
        # Past retention, as the worker's sweep left them: by id only, out of the hot sets.
        cutoff = utc_now() - timedelta(days=settings.ticket_retention_days)
        for start in range(0, len(ordered), BATCH):
            batch = ordered[start:start + BATCH]
            expired = [t.ticket_id for t in batch if t.closed_at is not None and t.closed_at < cutoff]
            await store.save([(t, "rebuild") for t in batch])
            await store.save([], evicted=expired)
    finally:
        await store.redis.aclose()
    return len(tickets)


def run(settings: Settings) -> int:
    count = asyncio.run(rebuild(settings))
    print(f"rebuilt {count} tickets into {settings.redis_url_redacted} (keys {settings.redis_prefix}:*)")
    return 0
