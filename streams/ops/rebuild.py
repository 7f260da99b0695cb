"""Rebuild the Redis projection from Kafka: soc.tickets is compacted and holds every ticket's
latest version, so Redis can always be thrown away and recomputed (the evidence index too: soc.evidence
says where each image is, the tickets' histories which tickets it was uploaded on). Open311's request records are kept,
and those of the requests still on soc.raw.city are written again where they are missing."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import timedelta

from kafka import KafkaConsumer, TopicPartition

from handlers import open311
from handlers.base import Context
from handlers.intake import to_incident
from schemas.config import Config, load_config
from schemas.raw import CityReport
from schemas.records import HistoryKind, Ticket
from streams import topics
from streams.clock import utc_now
from streams.evidence_store import EvidenceStore, Location
from streams.open311_store import keep, request_key
from streams.ops.repartition import end_offsets
from streams.settings import Settings
from streams.store import TicketStore

log = logging.getLogger("soc.rebuild")
BATCH = 500


def values(topic: str, bootstrap: list[str], security: dict | None = None) -> Iterator[bytes]:
    """Every non-null value of a topic, read from the beginning to its end at the start."""
    return (m.value for m in records(topic, bootstrap, security) if m.value is not None)


def records(topic: str, bootstrap: list[str], security: dict | None = None) -> Iterator:
    """Every record of a topic (key, value, partition, offset), from the beginning to its end at the start."""
    # Fetches as large as soc.evidence's largest record (an image), so that one always fits.
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None,
                             consumer_timeout_ms=5000, max_partition_fetch_bytes=topics.EVIDENCE_MAX_MESSAGE_BYTES,
                             **(security or {}))
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        # Not ListOffsets' end: Tansu 0.6 answers it with the last batch's base offset + 1, and a poll that
        # ended inside that batch (500 records at most) took the partition as read to its end.
        end = end_offsets(bootstrap, security or {}, {topic: len(partitions)})
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        remaining = {tp for tp in partitions if end[tp] > 0}
        while remaining:
            batch = consumer.poll(timeout_ms=2000)
            if not batch:
                if all(consumer.position(tp) >= end[tp] for tp in remaining):
                    break
                continue
            for tp, messages in batch.items():
                yield from messages
                if consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
    finally:
        consumer.close()


def latest_tickets(bootstrap: list[str], security: dict | None = None) -> dict[str, Ticket]:
    """Every ticket's highest version on soc.tickets."""
    latest: dict[str, Ticket] = {}
    for value in values(topics.TICKETS, bootstrap, security):
        ticket = Ticket.model_validate_json(value)
        known = latest.get(ticket.ticket_id)
        if known is None or ticket.version > known.version:
            latest[ticket.ticket_id] = ticket
    return latest


def evidence_locations(bootstrap: list[str], security: dict | None = None) -> dict[str, Location]:
    """Each image's latest record on soc.evidence (keyed by its SHA-256); a tombstone removes it."""
    found: dict[str, Location] = {}
    for record in records(topics.EVIDENCE, bootstrap, security):
        sha256 = record.key.decode("ascii", "replace") if record.key else ""
        if record.value is None:
            found.pop(sha256, None)
        else:
            found[sha256] = Location(record.partition, record.offset)
    return found


async def restore_evidence(store: TicketStore, tickets: dict[str, Ticket], locations: dict[str, Location]) -> None:
    """The evidence index: where each image is, and the tickets it was uploaded on (their histories say)."""
    index = EvidenceStore(store.redis, store.prefix, [], {})  # its Redis side only: no Kafka client starts
    for sha256, where in locations.items():
        await index.index(sha256, where)
    for ticket in tickets.values():
        for entry in ticket.history:
            if entry.kind is HistoryKind.evidence and entry.photo is not None:
                await index.link(entry.photo.sha256, ticket.ticket_id)


def open311_requests(config: Config, bootstrap: list[str], security: dict | None = None) -> list[dict]:
    """The records of the Open311 requests still on soc.raw.city (its retention), as the POST kept them."""
    found = []
    for value in values(topics.RAW_TOPICS["city"], bootstrap, security):
        try:
            report = CityReport.model_validate_json(value)
        except ValueError:  # dead-lettered when it arrived
            continue
        if open311.is_request(report):
            incident = to_incident("city", value, Context(config, report.reported_at))
            found.append(open311.record(report, incident, None))
    return found


async def rebuild(settings: Settings, wipe: bool = True) -> int:
    config = load_config(settings.config_dir)
    tickets = latest_tickets(settings.bootstrap_servers, settings.kafka_client_kwargs())
    requests = open311_requests(config, settings.bootstrap_servers, settings.kafka_client_kwargs())
    images = evidence_locations(settings.bootstrap_servers, settings.kafka_client_kwargs())
    store = TicketStore.from_url(settings.redis_url, settings.redis_prefix, config)
    try:
        if wipe:
            # Open311's request records are kept: soc.raw.city holds only their last 7 days.
            kept = f"{settings.redis_prefix}:open311:".encode()
            keys = [k async for k in store.redis.scan_iter(f"{settings.redis_prefix}:*", count=1000)
                    if not k.startswith(kept)]
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
        await restore_evidence(store, tickets, images)
        now = utc_now()
        for record in requests:
            if not await store.redis.exists(request_key(store, record["service_request_id"])):
                await keep(store, record, now)
    finally:
        await store.redis.aclose()
    return len(tickets)


def run(settings: Settings) -> int:
    count = asyncio.run(rebuild(settings))
    print(f"rebuilt {count} tickets into {settings.redis_url_redacted} (keys {settings.redis_prefix}:*)")
    return 0
