"""Where evidence images live: soc.evidence is the source of truth, Redis an index and a thumbnail cache.

Each image is one record on the compacted topic soc.evidence, keyed by its SHA-256 (handlers/evidence.py packs
it): every worker reads every image from the broker, a restart loses none, and the same picture uploaded
twice is one record. Redis holds, per image, where its record is (partition, offset) and what it shows, the
tickets it was uploaded on (who may see it), and its thumbnail for THUMB_TTL_S. A worker reads an image
back by its offset with a consumer of its own (no group, nothing committed), and keeps the images it served
last in a cache of CACHE_BYTES. `soc rebuild` writes the index again from the topic (streams/ops/rebuild.py).
"""
from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from redis.asyncio import Redis

from handlers import evidence
from handlers.evidence import Processed, Stored
from streams import topics

log = logging.getLogger("soc.evidence")

# Images kept in a worker's memory after it served them (the least recently served go first).
CACHE_BYTES = 64 * 1024 * 1024
# A thumbnail stays in Redis this long after it was last written; a later view writes it again.
THUMB_TTL_S = 7 * 24 * 3600
# How long a read of one record may take before the request gets a 503.
READ_TIMEOUT_S = 10.0
# Records a read looks past the indexed offset for the image's key: a second upload of the same picture made
# a later record, and compaction may have removed the earlier one the index names.
READ_AHEAD = 50


@dataclass(frozen=True)
class Location:
    partition: int
    offset: int


class ReadTimeout(Exception):
    """The broker did not hand the record back in time (the request gets a 503)."""


class EvidenceStore:
    """One per worker (made by the HTTP layer; its Kafka clients start on first use, so building it does
    nothing and a worker that never sees a photo opens no connection)."""

    def __init__(self, redis: Redis, prefix: str, bootstrap_servers: list[str], security: dict[str, Any]):
        self.redis, self.prefix = redis, prefix
        self._servers, self._security = bootstrap_servers, security
        self._producer: AIOKafkaProducer | None = None
        self._reader: AIOKafkaConsumer | None = None
        self._start = asyncio.Lock()
        self._read = asyncio.Lock()  # one record read at a time on the one reader
        self._cache: OrderedDict[str, Stored] = OrderedDict()
        self._cached_bytes = 0

    # ---------------------------------------------------------------- keys

    def _index(self, sha256: str) -> str:
        return f"{self.prefix}:evidence:{sha256}"

    def _tickets(self, sha256: str) -> str:
        return f"{self.prefix}:evidence-tickets:{sha256}"

    def _thumb(self, sha256: str) -> str:
        return f"{self.prefix}:evidence-thumb:{sha256}"

    # ---------------------------------------------------------------- writing

    async def put(self, image: Processed) -> Location:
        """The image on soc.evidence (once: an image already indexed is not sent again), indexed."""
        known = await self.location(image.sha256)
        if known is not None:
            return known
        producer = await self._started_producer()
        sent = await producer.send_and_wait(topics.EVIDENCE, key=image.sha256.encode(), value=evidence.pack(image))
        where = Location(sent.partition, sent.offset)
        await self.index(image.sha256, where)
        await self.redis.set(self._thumb(image.sha256), image.thumbnail, ex=THUMB_TTL_S)
        return where

    async def index(self, sha256: str, where: Location) -> None:
        """Where the image's record is: the latest of the places written (compaction keeps the latest)."""
        known = await self.location(sha256)
        if known is None or (where.partition, where.offset) > (known.partition, known.offset):
            await self.redis.hset(self._index(sha256), mapping={"partition": where.partition, "offset": where.offset})

    async def link(self, sha256: str, ticket_id: str) -> None:
        """The image was uploaded on the ticket: whoever may see the ticket may see the image."""
        await self.redis.sadd(self._tickets(sha256), ticket_id)

    # ---------------------------------------------------------------- reading

    async def location(self, sha256: str) -> Location | None:
        found = await self.redis.hgetall(self._index(sha256))
        if not found:
            return None
        return Location(int(found[b"partition"]), int(found[b"offset"]))

    async def tickets(self, sha256: str) -> list[str]:
        return sorted(t.decode() for t in await self.redis.smembers(self._tickets(sha256)))

    async def image(self, sha256: str) -> Stored | None:
        """The stored image, from this worker's cache or read back from soc.evidence; None when unknown."""
        cached = self._cache.get(sha256)
        if cached is not None:
            self._cache.move_to_end(sha256)
            return cached
        where = await self.location(sha256)
        if where is None:
            return None
        stored = await self._read_record(sha256, where)
        if stored is not None:
            self._keep(stored)
        return stored

    async def thumbnail(self, sha256: str) -> bytes | None:
        found = await self.redis.get(self._thumb(sha256))
        if found is not None:
            return found
        stored = await self.image(sha256)
        if stored is None:
            return None
        await self.redis.set(self._thumb(sha256), stored.thumbnail, ex=THUMB_TTL_S)
        return stored.thumbnail

    def _keep(self, stored: Stored) -> None:
        size = len(stored.image) + len(stored.thumbnail)
        if size > CACHE_BYTES:
            return
        self._cache[stored.sha256] = stored
        self._cached_bytes += size
        while self._cached_bytes > CACHE_BYTES:
            _, gone = self._cache.popitem(last=False)
            self._cached_bytes -= len(gone.image) + len(gone.thumbnail)

    async def _read_record(self, sha256: str, where: Location) -> Stored | None:
        reader = await self._started_reader()
        tp = TopicPartition(topics.EVIDENCE, where.partition)
        async with self._read:
            reader.assign([tp])
            reader.seek(tp, where.offset)
            looked = 0
            deadline = asyncio.get_running_loop().time() + READ_TIMEOUT_S
            while looked < READ_AHEAD:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    raise ReadTimeout(f"no record at {where} within {READ_TIMEOUT_S:.0f} s")
                batch = await reader.getmany(tp, timeout_ms=int(min(left, 1.0) * 1000), max_records=1)
                for record in batch.get(tp, []):
                    looked += 1
                    if record.key == sha256.encode() and record.value is not None:
                        try:
                            return evidence.unpack(record.value)
                        except evidence.BadRecord as exc:
                            log.warning("bad evidence record", extra={"sha256": sha256, "offset": record.offset,
                                                                      "error": str(exc)[:200]})
                            return None
                if not batch and await reader.position(tp) >= (await reader.end_offsets([tp]))[tp]:
                    return None  # read to the end: the record is gone (retention)
            return None

    # ---------------------------------------------------------------- clients

    async def _started_producer(self) -> AIOKafkaProducer:
        async with self._start:
            if self._producer is None:
                producer = AIOKafkaProducer(bootstrap_servers=self._servers, acks="all",
                                            max_request_size=topics.EVIDENCE_MAX_MESSAGE_BYTES, **self._security)
                await producer.start()
                self._producer = producer
            return self._producer

    async def _started_reader(self) -> AIOKafkaConsumer:
        async with self._start:
            if self._reader is None:
                reader = AIOKafkaConsumer(bootstrap_servers=self._servers, group_id=None, enable_auto_commit=False,
                                          max_partition_fetch_bytes=topics.EVIDENCE_MAX_MESSAGE_BYTES,
                                          fetch_max_bytes=2 * topics.EVIDENCE_MAX_MESSAGE_BYTES, **self._security)
                await reader.start()
                self._reader = reader
            return self._reader

    async def close(self) -> None:
        for client in (self._producer, self._reader):
            if client is not None:
                await client.stop()
        self._producer = self._reader = None

