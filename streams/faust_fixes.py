"""Changes to Faust's consumer, each for a failure measured here; applied once, before the app is built.

Each patch is pinned by a test (tests/stream/test_faust_fixes.py), so a Faust upgrade that moves
the code they wrap fails there first."""
from __future__ import annotations

import itertools

from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as driver

_applied: set[str] = set()


def cap_fetch_wait(max_wait_ms: int) -> None:
    """Faust has no setting for the consumer's fetch_max_wait_ms: set it on the consumer it builds.
    Faust hard-codes 1500 ms, and Tansu holds a fetch over several partitions for the whole wait
    even when data arrives, adding up to 1.5 s per hop (bench/README.md)."""
    if "fetch_wait" in _applied:
        return
    create = driver.AIOKafkaConsumerThread._create_worker_consumer

    def _create_worker_consumer(self, transport):
        consumer = create(self, transport)
        consumer._fetch_max_wait_ms = max_wait_ms  # read by AIOKafkaConsumer.start() for its Fetcher
        return consumer

    driver.AIOKafkaConsumerThread._create_worker_consumer = _create_worker_consumer
    _applied.add("fetch_wait")


def drop_acks_from_earlier_assignments() -> None:
    """Messages fetched before a rebalance reach the streams after it, which skip them as of another
    generation but ack them. Faust has already cleared the partition's bookkeeping, so the stale
    offsets land in the new assignment's acks, and a commit computed from them can pass records
    nobody processed: the rebalance test lost an event that way. Such acks are discarded instead
    (the new owner reads from the committed offset).

    Faust takes the generation from the broker, which a restarted Tansu numbers from 0 again, so
    it could not tell the assignments apart: the generation becomes a count of assignments in this
    process instead."""
    if "stale_acks" in _applied:
        return
    assignments = itertools.count(1)
    listener = driver.ConsumerRebalanceListener

    async def on_partitions_assigned(self, assigned) -> None:
        generation = next(assignments)
        self._thread.app.consumer_generation_id = generation
        await self._thread.on_partitions_assigned(driver.ensure_TPset(assigned), generation)

    listener.on_partitions_assigned = on_partitions_assigned

    ack = faust_consumer.Consumer.ack

    def ack_unless_stale(self, message) -> bool:
        if message.generation_id is not None and message.generation_id != self.app.consumer_generation_id:
            message.acked = True
            self._unacked_messages.discard(message)
            return False
        return ack(self, message)

    faust_consumer.Consumer.ack = ack_unless_stale
    _applied.add("stale_acks")
