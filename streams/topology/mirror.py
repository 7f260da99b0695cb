"""A compacted topic mirrored whole on every worker, read outside the consumer group.

Faust's GlobalTable did not keep a second worker up to date here (seen with two workers on Tansu: the
joining worker never saw a silence made after it started; robinhood/faust#716 reports the same). The
whitelist, the silences, the inhibitors and the response level must be the same on every worker, because
every worker decides incidents with them. So each worker reads soc.sites, soc.silences, soc.inhibitors and
soc.response itself, from the beginning, with a plain aiokafka consumer that has no group and commits
nothing. `ready` is set once the partitions are read to where they ended at start (`_Ends`): the agents
wait for it, so they never decide with half a table.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

log = logging.getLogger("soc.mirror")


def aiokafka_security(settings) -> dict[str, Any]:
    """The worker's Kafka security settings in aiokafka's words (empty for PLAINTEXT)."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return {}
    kwargs: dict[str, Any] = {"security_protocol": protocol}
    if settings.kafka_tls:
        kwargs["ssl_context"] = settings.kafka_ssl_context()
    if protocol.startswith("SASL_"):
        kwargs.update(sasl_mechanism=settings.kafka_sasl_mechanism, sasl_plain_username=settings.kafka_sasl_username,
                      sasl_plain_password=settings.kafka_sasl_password.get_secret_value())
    return kwargs


class _Ends:
    """Where each partition ended when the mirror started: ListOffsets' answer, raised once to the high
    watermark of the first fetch that reports one. Tansu lists its last batch's base offset + 1 as the
    end, and a read of 1,000 records that stopped inside that batch counted as caught up with the rest of
    the batch unread. Raised once, not at every fetch: on a topic other workers keep writing, an end that
    followed the fetches could keep the mirror from ever being ready. On Kafka both agree."""

    def __init__(self, listed: dict):
        self.ends, self.fetched = dict(listed), set()

    async def reached(self, consumer: AIOKafkaConsumer) -> bool:
        for tp, end in self.ends.items():
            if tp not in self.fetched and (high := consumer.highwater(tp)) is not None:
                self.ends[tp] = max(end, high)
                self.fetched.add(tp)
        return all([await consumer.position(tp) >= end for tp, end in self.ends.items()])


class TopicMirror:
    """key -> the latest value (JSON, decoded) of a compacted topic; a null value deletes the key."""

    def __init__(self, topic: str, bootstrap_servers: list[str], security: dict[str, Any],
                 on_bad_record: Callable[[str, Exception], None]):
        self.topic = topic
        self.values: dict[str, Any] = {}
        self.ready = asyncio.Event()
        self._servers, self._security = bootstrap_servers, security
        self._on_bad_record = on_bad_record

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=self._servers, group_id=None, enable_auto_commit=False,
                                    auto_offset_reset="earliest", **self._security)
        await consumer.start()
        try:
            partitions = None
            while not partitions:
                partitions = consumer.partitions_for_topic(self.topic)
                if not partitions:
                    await consumer.force_metadata_update()
                    await asyncio.sleep(0.2)
            tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = _Ends(await consumer.end_offsets(tps))
            while True:
                if not self.ready.is_set() and await ends.reached(consumer):
                    self.ready.set()
                    log.info("mirror caught up", extra={"topic": self.topic, "keys": len(self.values)})
                for records in (await consumer.getmany(timeout_ms=500, max_records=1000)).values():
                    for record in records:
                        self._apply(record)
        finally:
            await consumer.stop()

    def _apply(self, record) -> None:
        key = record.key.decode("utf-8", "replace") if record.key else ""
        if record.value is None:
            self.values.pop(key, None)
            return
        try:
            self.values[key] = orjson.loads(record.value)
        except orjson.JSONDecodeError as exc:
            self._on_bad_record(key, exc)
