"""A topic mirror is ready only once it holds the whole topic, on a real Tansu broker."""
from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from streams.topology.mirror import TopicMirror
from tests.integration.test_table_recovery import listed_and_true_ends

pytestmark = pytest.mark.integration

KEYS = 1500  # more than one read of the mirror (1,000 records) takes, in a single batch


class CountedReady(asyncio.Event):
    """The mirror's `ready`, noting how many keys the mirror held when it was set."""

    def __init__(self, mirror: TopicMirror):
        super().__init__()
        self.mirror, self.keys_when_set = mirror, None

    def set(self) -> None:
        self.keys_when_set = len(self.mirror.values)
        super().set()


async def test_a_mirror_is_ready_only_with_every_record_of_a_last_batch_larger_than_one_read(pipeline, unique):
    # Tansu lists the partition's end as the batch's base offset + 1: ready after the first read, 1,000 of 1,500.
    bootstrap, topic = pipeline.stack.bootstrap, f"soc-test-mirror-{unique}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=500, max_batch_size=1 << 20)
    await producer.start()
    try:
        sent = [await producer.send(topic, b"{}", key=f"site-{n}".encode()) for n in range(KEYS)]
        offsets = {(await one).offset for one in sent}
    finally:
        await producer.stop()
    assert len(offsets) == KEYS
    listed, end = listed_and_true_ends(bootstrap, topic)
    assert end == KEYS and listed < KEYS, f"more than one batch (listed end {listed}): nothing to show"
    mirror = TopicMirror(topic, [bootstrap], {}, on_bad_record=lambda key, exc: None)
    mirror.ready = ready = CountedReady(mirror)
    running = asyncio.create_task(mirror.run())
    try:
        await asyncio.wait_for(ready.wait(), 30)
    finally:
        running.cancel()
    assert ready.keys_when_set == KEYS
