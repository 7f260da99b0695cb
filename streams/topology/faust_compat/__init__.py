"""Faust's and aiokafka's private parts, used here and nowhere else: the consumer patches, each for a
failure measured here; the accessors by which the agents hold back acks and write their table's changelog
themselves; and (in consumer.py, imported here) those by which the guards (watchdog.py) read the consumer's
bookkeeping and repair it.

A patch replaces a method of a Faust or aiokafka class, so it is put in place once, by the first app that
asks; what it does is each app's own business: the patched method reads the `Fixes` of the app it runs
for (set by `apply_fixes` with that app's settings), and for an app without them does what Faust does.

Each is pinned by a test of its behaviour (tests/stream/test_faust_compat.py), and pyproject.toml
pins faust-streaming and aiokafka to the versions those tests pass on."""
from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from faust.tables import recovery as faust_recovery
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as driver
from faust.types import TP

# The guards' accessors, reached as faust_compat.<name> like the rest.
from streams.topology.faust_compat.consumer import (acked_offsets, ask_consumer, committed_offset,
                                                    consumer_thread_loop, in_flight, read_offset,
                                                    set_committed_offset, start_over, waiting_for_agents)

if TYPE_CHECKING:
    from streams.topology.watchdog import InOrder

log = logging.getLogger("soc.pipeline")


@dataclass
class Fixes:
    """What the patches do for one app (kept on the app as `compat_fixes`); None or False: Faust's way."""

    fetch_max_wait_ms: int | None = None
    stale_acks: bool = False
    # Counts the app's assignments: its consumer generations (drop_acks_from_earlier_assignments).
    assignments: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    gapless_topics: frozenset[str] | None = None
    recovery_end: bool = False


def fixes(app) -> Fixes:
    """The app's Fixes, made empty on first use."""
    found = getattr(app, "compat_fixes", None)
    if found is None:
        found = app.compat_fixes = Fixes()
    return found


def _fixes_of(app) -> Fixes | None:
    return getattr(app, "compat_fixes", None)


def _install(owner, name: str, replacement: Callable) -> None:
    """Put `replacement` in place of owner.name, unless one of ours is there already (put there for an
    earlier app: it reads each app's own Fixes)."""
    if getattr(getattr(owner, name), "compat_fix", False):
        return
    replacement.compat_fix = True
    setattr(owner, name, replacement)


def apply_fixes(app, fetch_max_wait_ms: int, gapless_topics: frozenset[str]) -> None:
    """Every patch, for `app` with these settings, before it starts."""
    cap_fetch_wait(app, fetch_max_wait_ms)
    drop_acks_from_earlier_assignments(app)
    commit_only_what_was_processed(app, gapless_topics)
    recover_to_the_fetched_end(app)
    json_protocol_errors()


def json_protocol_errors() -> None:
    """aiohttp answers a request it cannot parse (a control character in a header, a bad request line,
    a line over 8190 bytes) before any middleware, with a text page that echoes the request line, and
    logs each at error level with a traceback. Answer in JSON, echoing nothing: every error of the API is
    a JSON body. A client's malformed request is one warning line naming what was wrong, not what was
    sent (a header can carry a token). aiohttp's handler knows no Faust app and the patch has no setting:
    once in place it serves every server of the process."""
    from aiohttp import web_protocol
    from aiohttp.web_response import json_response

    original = web_protocol.RequestHandler.handle_error

    def handle_error(self, request, status=500, exc=None, message=None):
        if status >= 500:
            original(self, request, status, exc, message)  # logs it, and raises if a response was begun
        else:  # only the parser's refusals are 4xx here: no response has been begun
            log.warning("malformed request refused", extra={"status": status, "error": type(exc).__name__,
                                                            "remote": request.remote})
        error = json_response({"error": "bad request" if 400 <= status < 500 else "internal error"}, status=status)
        error.force_close()
        return error

    _install(web_protocol.RequestHandler, "handle_error", handle_error)


def withhold_acks(app, events) -> None:
    """Mark the events' messages done without recording them as acked: the commit stays before them
    and they are read again (by whoever holds the partition after the process ends, or by a seek)."""
    unacked = app.consumer._unacked_messages
    for event in events:
        event.message.acked = True  # Consumer.ack records nothing for a message already marked
        unacked.discard(event.message)


async def finished_batches(stream, size: int, within: float, in_order: InOrder | None = None):
    """`stream.take_events(size, within)`, admitted by `in_order` if given, each batch acked only once the
    agent's body has finished it. take_events acks a batch when the body leaves it, by an exception too,
    and a commit in the seconds before the crashed worker exits would then pass outputs the broker never
    acknowledged. So the batch's messages are marked acked while the body runs (Message.ack then does
    nothing) and unmarked when the body asks for the next batch, before take_events acks them."""
    async for events in stream.take_events(size, within=within):
        if in_order is not None:
            events = await in_order.admitted(events)
        held = [event.message for event in events if not event.message.acked]
        for message in held:
            message.acked = True
        yield events
        for message in held:
            message.acked = False


def set_for_changelog(table, key, value) -> tuple[str, bytes, bytes | None]:
    """Set `key` in the table's store without Faust's changelog send (a `send_soon` through the producer
    buffer, which a commit can pass unsent: streams/topology/outputs.py) and return the changelog
    record (topic, key, value) as Faust would have serialized it, for the caller to send to the input's
    partition and await before its batch is acked."""
    table.data[key] = value
    topic = table.changelog_topic
    key_bytes, _ = topic.prepare_key(key, table.key_serializer)
    value_bytes, _ = topic.prepare_value(value, table.value_serializer)
    return topic.get_topic_name(), key_bytes, value_bytes


def assigned(app, topic: str, partition: int) -> bool:
    return TP(topic, partition) in app.consumer.assignment()


def cap_fetch_wait(app, max_wait_ms: int) -> None:
    """Faust has no setting for the consumer's fetch_max_wait_ms: set it on the consumer it builds.
    Faust hard-codes 1500 ms, and Tansu holds a fetch over several partitions for the whole wait
    even when data arrives, adding up to 1.5 s per hop (docs/performance.md)."""
    fixes(app).fetch_max_wait_ms = max_wait_ms
    create = driver.AIOKafkaConsumerThread._create_worker_consumer

    def _create_worker_consumer(self, transport):
        consumer = create(self, transport)
        own = _fixes_of(self.app)
        if own is not None and own.fetch_max_wait_ms is not None:
            consumer._fetch_max_wait_ms = own.fetch_max_wait_ms  # read by AIOKafkaConsumer.start() for its Fetcher
        return consumer

    _install(driver.AIOKafkaConsumerThread, "_create_worker_consumer", _create_worker_consumer)


def drop_acks_from_earlier_assignments(app) -> None:
    """Messages fetched before a rebalance reach the streams after it, which skip them as of another
    generation but ack them. Faust has already cleared the partition's bookkeeping, so the stale
    offsets land in the new assignment's acks, and a commit computed from them can pass records
    nobody processed: the rebalance test lost an event that way. Such acks are discarded instead
    (the new owner reads from the committed offset).

    Faust takes the generation from the broker, which a restarted Tansu numbers from 0 again, so
    it could not tell the assignments apart: the generation becomes a count of the app's assignments
    instead."""
    fixes(app).stale_acks = True
    listener = driver.ConsumerRebalanceListener
    assigned_by_faust = listener.on_partitions_assigned

    async def on_partitions_assigned(self, assigned) -> None:
        own = _fixes_of(self._thread.app)
        if own is None or not own.stale_acks:
            return await assigned_by_faust(self, assigned)
        generation = next(own.assignments)
        self._thread.app.consumer_generation_id = generation
        await self._thread.on_partitions_assigned(driver.ensure_TPset(assigned), generation)

    _install(listener, "on_partitions_assigned", on_partitions_assigned)

    ack = faust_consumer.Consumer.ack

    def ack_unless_stale(self, message) -> bool:
        own = _fixes_of(self.app)
        if (own is not None and own.stale_acks and message.generation_id is not None
                and message.generation_id != self.app.consumer_generation_id):
            message.acked = True
            self._unacked_messages.discard(message)
            return False
        return ack(self, message)

    _install(faust_consumer.Consumer, "ack", ack_unless_stale)


def commit_only_what_was_processed(app, gapless_topics: frozenset[str]) -> None:
    """Faust drops records it has fetched when flow stops under a fetch, and on the next record
    it marks the skipped offsets as a gap, counted as acked (meant for compacted topics), so the
    commit passes records nobody processed: the kill -9 test lost 2 records per partition that
    way right after recovery. Its commit also passes a single missing record at the head of the
    acks (an off-by-one in `_new_offset`).

    On `gapless_topics` (not compacted: every offset is a record) no gap is recorded and the
    commit stops before any missing offset; the partition watchdog then reads again from the
    committed offset (PartitionWatchdog below). Where the group has committed nothing,
    Faust would commit from the first acked offset whatever came before it: the broker-restart
    test lost the first record of a partition that way. The commit waits until the watchdog has
    set the offset reading started from."""
    fixes(app).gapless_topics = gapless_topics
    add_gap = faust_consumer.Consumer._add_gap
    new_offset = faust_consumer.Consumer._new_offset

    async def _add_gap(self, tp, offset_from: int, offset_to: int) -> None:
        if not _gapless(self.app, tp):
            await add_gap(self, tp, offset_from, offset_to)

    def _new_offset(self, tp):
        if not _gapless(self.app, tp):
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

    _install(faust_consumer.Consumer, "_add_gap", _add_gap)
    _install(faust_consumer.Consumer, "_new_offset", _new_offset)


def _gapless(app, tp) -> bool:
    own = _fixes_of(app)
    return own is not None and own.gapless_topics is not None and tp.topic in own.gapless_topics


def recover_to_the_fetched_end(app) -> None:
    """Faust's table recovery reads each changelog partition up to the end ListOffsets reported when it
    started. Tansu 0.6 reports the last batch's base offset + 1 there (21 keys written in one batch: end 1),
    so recovery ended after the first record of the last batch and the rest of it was never applied: the
    restarted worker decided readings without those keys' state and opened second tickets (one way the
    two-kill storm got them; tests/integration/test_table_recovery.py). Its fetch responses carry the true end: a partition
    counts as recovered only once it is read up to the larger of the two. On Kafka they agree.

    Read live on every check, never stored: a fetch that reports a lower end (a broker that lost its data)
    lowers it again at once, so recovery cannot wait for records that are gone."""
    fixes(app).recovery_end = True
    active_remaining = faust_recovery.Recovery.active_remaining

    def active_remaining_to_the_fetched_end(self):
        remaining = active_remaining(self)
        own = _fixes_of(self.app)
        if own is None or not own.recovery_end:
            return remaining
        for tp in remaining:
            try:
                fetched_end = self.app.consumer.highwater(tp)  # from the last fetch response; None before one
            except Exception:  # the partition left the assignment under us: the listed end stands
                continue
            if fetched_end is not None:
                # Faust's highwaters are the last offset (end - 1), as its offsets are.
                remaining[tp] = max(remaining[tp], fetched_end - 1 - self.active_offsets[tp])
        return remaining

    _install(faust_recovery.Recovery, "active_remaining", active_remaining_to_the_fetched_end)
