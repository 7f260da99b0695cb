"""Every use of Faust's or aiokafka's private parts, in one module: the consumer patches (each for
a failure measured here, applied once before the app is built), the partition watchdog that
repairs what Faust's consumer skips, and two small accessors.

Each is pinned by a test of its behaviour (tests/stream/test_faust_compat.py), and pyproject.toml
pins faust-streaming and aiokafka to the versions those tests pass on."""
from __future__ import annotations

import itertools
import logging
from contextlib import contextmanager
from time import monotonic

from faust.tables import recovery as faust_recovery
from faust.transport import consumer as faust_consumer
from faust.transport.drivers import aiokafka as driver
from faust.types import TP

from streams.topology.stalls import StallDetector

log = logging.getLogger("soc.pipeline")
_applied: set[str] = set()


def apply_fixes(fetch_max_wait_ms: int, gapless_topics: frozenset[str]) -> None:
    cap_fetch_wait(fetch_max_wait_ms)
    drop_acks_from_earlier_assignments()
    commit_only_what_was_processed(gapless_topics)
    recover_to_the_fetched_end()
    json_protocol_errors()


def json_protocol_errors() -> None:
    """aiohttp answers a request it cannot parse (a control character in a header, a bad request line)
    before any middleware, with a text page that echoes the request line. Answer in JSON, echoing
    nothing: every error of the API is a JSON body."""
    if "json_errors" in _applied:
        return
    from aiohttp import web_protocol
    from aiohttp.web_response import json_response

    original = web_protocol.RequestHandler.handle_error

    def handle_error(self, request, status=500, exc=None, message=None):
        original(self, request, status, exc, message)  # logs it, and raises if a response was begun
        error = json_response({"error": "bad request" if 400 <= status < 500 else "internal error"}, status=status)
        error.force_close()
        return error

    web_protocol.RequestHandler.handle_error = handle_error
    _applied.add("json_errors")


@contextmanager
def writing_for(stream, event):
    """Table writes find their partition through the stream's current event: make it `event` for
    the writes, then put back what was there. take_events' background reader takes the event of
    the value it buffers from `stream.current_event` once the batch is done, so leaving ours there
    made it buffer our event again and lose its own: a record per partition every few batches went
    unprocessed until the watchdog read it again 15 s later (the benchmark's drain time and p99)."""
    before = stream.current_event
    stream._set_current_event(event)
    try:
        yield
    finally:
        stream._set_current_event(before)


def assigned(app, topic: str, partition: int) -> bool:
    return TP(topic, partition) in app.consumer.assignment()


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
    committed offset (PartitionWatchdog below). Where the group has committed nothing,
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


def recover_to_the_fetched_end() -> None:
    """Faust's table recovery reads each changelog partition up to the end ListOffsets reported when it
    started. Tansu 0.6 reports the last batch's base offset + 1 there (21 keys written in one batch: end 1),
    so recovery ended after the first record of the last batch and the rest of it was never applied: the
    restarted worker decided readings without those keys' state and opened second tickets (one way the
    two-kill storm got them; tests/integration/test_table_recovery.py). Its fetch responses carry the true end: a partition
    counts as recovered only once it is read up to the larger of the two. On Kafka they agree.

    Read live on every check, never stored: a fetch that reports a lower end (a broker that lost its data)
    lowers it again at once, so recovery cannot wait for records that are gone."""
    if "recovery_end" in _applied:
        return
    active_remaining = faust_recovery.Recovery.active_remaining

    def active_remaining_to_the_fetched_end(self):
        remaining = active_remaining(self)
        for tp in remaining:
            try:
                fetched_end = self.app.consumer.highwater(tp)  # from the last fetch response; None before one
            except Exception:  # the partition left the assignment under us: the listed end stands
                continue
            if fetched_end is not None:
                # Faust's highwaters are the last offset (end - 1), as its offsets are.
                remaining[tp] = max(remaining[tp], fetched_end - 1 - self.active_offsets[tp])
        return remaining

    faust_recovery.Recovery.active_remaining = active_remaining_to_the_fetched_end
    _applied.add("recovery_end")


class InOrder:
    """An agent's guard against a hole at the head of what it is given. After a rebalance Faust can
    deliver a partition's records past some it never delivered (fetched in the earlier assignment and
    dropped as another generation's, while the fetch position moved on); the watchdog read them again
    later, so a later reading was decided before an earlier one. After two kills in a storm a station
    then got a second ticket: the earlier reading's ticket, written before the kill, was left aside.

    A record past the next expected offset of its partition is held back, unacked (the commit stays
    before it), and the partition is read again from the expected offset at once; records at or below
    it are in order or replays. A hole that reading again does not fill within `give_up_s` (records
    deleted by retention before anyone read them) is passed over with a warning at the next record
    past it (on a partition that has gone quiet, once the watchdog has read it again)."""

    def __init__(self, app, metrics, give_up_s: float = 30.0, clock=monotonic):
        self.app, self.metrics, self.give_up_s, self.clock = app, metrics, give_up_s, clock
        self.generation = None
        self.expected: dict[TP, int] = {}
        self.sought: dict[TP, tuple[int, float]] = {}  # partition -> (offset read again from, when)

    async def admitted(self, events: list) -> list:
        """The events to process, in order; the rest are held back and will come again."""
        generation = self.app.consumer_generation_id
        if generation != self.generation:
            self.generation, self.expected, self.sought = generation, {}, {}
        kept = []
        for event in events:
            message = event.message
            tp = message.tp
            expected = self.expected.get(tp)
            if expected is None:
                # Nothing committed (or 0, which Faust records as None): no hole to see at the head;
                # the commit waits for the watchdog there (commit_only_what_was_processed).
                committed = self.app.consumer._committed_offset.get(tp)
                expected = message.offset if committed is None else committed
            if message.offset <= expected or await self._passed_over(tp, expected, message.offset):
                self.expected[tp] = max(expected, message.offset + 1)
                kept.append(event)
            else:
                self.expected[tp] = expected
                message.acked = True  # as if processed, but never recorded as acked: nothing commits past it
                self.app.consumer._unacked_messages.discard(message)
        return kept

    async def _passed_over(self, tp, expected: int, offset: int) -> bool:
        now = self.clock()
        sought = self.sought.get(tp)
        if sought is None or sought[0] != expected:
            log.warning("records missing before this one: reading again from the next expected offset",
                        extra={"topic": tp.topic, "partition": tp.partition, "restart_at": expected, "offset": offset})
            self.metrics.partition_stalls.labels(tp.topic).inc()
            self.sought[tp] = (expected, now)
            await self.app.consumer.seek(tp, expected)
            return False
        if now - sought[1] < self.give_up_s:
            return False  # fetched before the seek took effect: it comes again after the missing ones
        log.warning("records missing and not found again: going on without them",
                    extra={"topic": tp.topic, "partition": tp.partition, "expected": expected, "offset": offset})
        return True


async def committed_on_broker(app, tp) -> int:
    """The group's committed offset as the broker has it, else the earliest one (auto.offset.reset).
    Not Faust's own record of it, which a broker that lost its state (Tansu restarted) leaves stale."""
    thread = app.consumer._thread  # Faust exposes the aiokafka consumer only through its thread
    client = thread._ensure_consumer()
    committed = await thread.call_thread(client.committed, tp)
    if committed is not None and committed >= 0:
        return committed
    return (await thread.call_thread(client.beginning_offsets, [tp]))[tp]


class PartitionWatchdog:
    """Consumer lag per assigned partition. A partition that stopped delivering, or whose commit is
    held at a record Faust skipped, is read again from its committed offset: the records Faust
    dropped come back (every step reproduces its outputs on a replay). Runs as a guarded timer,
    and gives up a look whenever the assignment moves under it."""

    interval_s = 5.0
    # A partition counts as stalled after this long with records waiting and nothing in flight.
    stall_after_s = 15.0

    def __init__(self, app, metrics, agent_topics: frozenset[str], clock=monotonic):
        self.app, self.metrics, self.agent_topics, self.clock = app, metrics, agent_topics, clock
        # Each watched topic's stall count exists from start-up at 0: the alert and the dashboard name
        # it, and a worker that never stalls must still show it (a flat line, not no data).
        for topic in sorted(agent_topics):
            metrics.partition_stalls.labels(topic)
        self.stalls = StallDetector(self.stall_after_s)
        # Partitions whose log end was below the consumer's position at the last look: a highwater
        # read just before a fetch lands looks the same for a moment, so it must hold twice.
        self._behind: set = set()

    async def look(self) -> None:
        app, consumer = self.app, self.app.consumer
        self.metrics.consumer_lag.clear()
        if app.rebalancing:
            return
        assigned = [tp for tp in consumer.assignment() if tp.topic in self.agent_topics]
        in_flight = {message.tp for message in list(consumer._unacked_messages)}
        now = self.clock()
        positions = {}
        for tp in assigned:
            if consumer._committed_offset.get(tp) is None:
                # Nothing committed yet: where reading started, so the commit can check for holes from there.
                consumer._committed_offset[tp] = await committed_on_broker(self.app, tp)
            read = consumer._read_offset.get(tp)
            # Faust leaves the read offset unset after an assignment until a record arrives; the
            # committed offset is then the next one due.
            positions[tp] = read + 1 if read is not None else (consumer._committed_offset.get(tp) or 0)
        self.stalls.progress(sum(positions.values()), now)
        behind = set()
        for tp, next_offset in positions.items():
            if app.rebalancing or tp not in consumer.assignment():
                return  # revoked while this look awaited: the next look starts from the new assignment
            end = consumer.highwater(tp)
            if end is None:
                continue
            if end < next_offset and tp not in self._behind:
                behind.add(tp)
                continue
            if end < next_offset:
                # The log ends before where this consumer stands: the broker lost it (Tansu restarted
                # empty; on Kafka, a topic recreated). Faust's offsets for it are stale: start over.
                restart_at = await committed_on_broker(self.app, tp)
                for offsets in (consumer._acked, consumer._acked_index, consumer._gap):
                    offsets.pop(tp, None)
                consumer._committed_offset[tp] = restart_at
                await self._read_again(tp, restart_at, "log end below the consumer's position: reading again",
                                       next_offset=next_offset, end=end)
                continue
            self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(end - next_offset, 0))
            # Acks past a missing record hold the commit at the hole (commit_only_what_was_processed).
            acked = consumer._acked.get(tp)
            committed = consumer._committed_offset.get(tp)
            if acked and committed is not None and self.stalls.stalled(("hole", tp), committed, min(acked),
                                                                        tp in in_flight, now):
                await self._read_again(tp, committed, "records skipped by the consumer: reading again from the "
                                       "committed offset", first_acked=min(acked))
                continue
            if not acked and committed is not None and self.stalls.stalled(("tail", tp), committed, next_offset,
                                                                            tp in in_flight, now):
                # Read past the commit, nothing acked and nothing in flight: the last records read
                # were dropped (no later record exposes the hole). Read them again.
                await self._read_again(tp, committed, "records read but never processed: reading again from the "
                                       "committed offset", next_offset=next_offset)
                continue
            if self.stalls.stalled(tp, next_offset, end, tp in in_flight, now) and self.stalls.idle(now):
                await self._read_again(tp, await committed_on_broker(self.app, tp),
                                       "partition stalled: reading again from the committed offset",
                                       next_offset=next_offset, end=end)
        self._behind = behind
        self.stalls.keep_only([*assigned, *((kind, tp) for tp in assigned for kind in ("hole", "tail"))])

    async def _read_again(self, tp, offset: int, why: str, **seen: int) -> None:
        """Seek `tp` back to `offset`, with a warning and a count: the watchdog's one repair."""
        log.warning(why, extra={"topic": tp.topic, "partition": tp.partition, "restart_at": offset, **seen})
        self.metrics.partition_stalls.labels(tp.topic).inc()
        await self.app.consumer.seek(tp, offset)

