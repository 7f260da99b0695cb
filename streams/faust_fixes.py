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


def commit_only_what_was_processed(gapless_topics: frozenset[str]) -> None:
    """Faust drops records it has fetched when flow stops under a fetch, and on the next record
    it marks the skipped offsets as a gap, counted as acked (meant for compacted topics), so the
    commit passes records nobody processed: the kill -9 test lost 2 records per partition that
    way right after recovery. Its commit also passes a single missing record at the head of the
    acks (an off-by-one in `_new_offset`).

    On `gapless_topics` (not compacted: every offset is a record) no gap is recorded and the
    commit stops before any missing offset; the partition watchdog then reads again from the
    committed offset (streams/app.py, watch_partitions). Where the group has committed nothing,
    Faust would commit from the first acked offset whatever came before it: the broker-restart
    test lost the first record of a partition that way. The commit waits until the watchdog has
    set the offset reading started from."""
    if "gapless" in _applied:
        return
    add_gap = faust_consumer.Consumer._add_gap
    new_offset = faust_consumer.Consumer._new_offset

    async def _add_gap(self, tp, offset_from: int, offset_to: int) -> None:
        if tp.topic not in gapless_topics:
            await add_gap(self, tp, offset_from, offset_to)

    def _new_offset(self, tp):
        if tp.topic not in gapless_topics:
            return new_offset(self, tp)
        acked = self._acked[tp]
        if not acked:
            return None
        acked.sort()
        committed = self._committed_offset[tp]
        # Unknown (nothing committed yet: the watchdog fills in where reading started), or a record
        # before the first acked one is missing: hold the commit.
        if committed is None or acked[0] != committed:
            return None
        batch = next(faust_consumer.consecutive_numbers(acked))
        acked[: len(batch)] = []
        self._acked_index[tp].difference_update(batch)
        return batch[-1] + 1

    faust_consumer.Consumer._add_gap = _add_gap
    faust_consumer.Consumer._new_offset = _new_offset
    _applied.add("gapless")
