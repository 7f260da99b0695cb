"""The two guards that read a partition again from where its records went missing: `InOrder`, inside an
agent, holds back a record past a hole at the head of its batch; `PartitionWatchdog`, a guarded timer, finds
partitions that stopped delivering or whose commit is held at a record Faust skipped. They read Faust's
consumer bookkeeping and repair it through faust_compat, which holds every private part they use."""
from __future__ import annotations

import asyncio
import logging
from time import monotonic

from faust.types import TP

from streams.topology import faust_compat
from streams.topology.stalls import StallDetector

log = logging.getLogger("soc.pipeline")
# How long the watchdog waits for a partition's fetch position (aiokafka waits while it is being reset).
POSITION_WAIT_S = 1.0
# How long a guard waits for the broker's answer about a partition (its commit, where its log starts).
BROKER_ANSWER_S = 5.0


class InOrder:
    """An agent's guard against a hole at the head of what it is given. After a rebalance Faust can
    deliver a partition's records past some it never delivered (fetched in the earlier assignment and
    dropped as another generation's, while the fetch position moved on); the watchdog read them again
    later, so a later reading was decided before an earlier one. After two kills in a storm a station
    then got a second ticket: the earlier reading's ticket, written before the kill, was left aside.

    A record past the next expected offset of its partition is held back, unacked (the commit stays
    before it), and the partition is read again from the expected offset at once; records at or below
    it are in order or replays. A hole that reading again has not filled within `give_up_s` is waited
    for while its records wait in the agent's queue; passed over, with a warning at the next record past
    it, once the log starts past it (records deleted by retention before anyone read them; on a partition
    that has gone quiet, once the watchdog has read it again); and otherwise read again."""

    def __init__(self, app, metrics, give_up_s: float = 30.0, clock=monotonic, start_of=None, log_start=None):
        self.app, self.metrics, self.give_up_s, self.clock = app, metrics, give_up_s, clock
        # Where the group starts reading a partition that Faust has no commit for (the broker's answer).
        self.start_of = start_of or committed_on_broker
        # Where the partition's log starts now (records before it were deleted).
        self.log_start = log_start or log_start_on_broker
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
                committed = faust_compat.committed_offset(self.app, tp)
                expected = committed if committed is not None else await self._start(tp, message.offset)
            if message.offset <= expected or await self._passed_over(tp, expected, message.offset):
                self.expected[tp] = max(expected, message.offset + 1)
                kept.append(event)
            else:
                self.expected[tp] = expected
                faust_compat.withhold_acks(self.app, [event])  # nothing commits past it
        return kept

    async def _start(self, tp, offset: int) -> int:
        """Faust records both "nothing committed" and "0 committed" as None: the broker says where the
        group starts (its commit, else the log's start), so a hole at the very head is seen too. A new
        group on a topic written again (soc repartition) lost the record at offset 0 so: Faust delivered
        offset 1 first, and the key's state then took offset 0, read again, for a replay."""
        try:
            return await self.start_of(self.app, tp)
        except Exception:  # the broker unreachable or the partition revoked: as before, no head check
            log.warning("could not ask the broker where the group starts: taking the first record delivered",
                        extra={"topic": tp.topic, "partition": tp.partition, "offset": offset}, exc_info=True)
            return offset

    async def _deleted(self, tp, expected: int) -> bool:
        """Whether the partition's log now starts past `expected`; without the broker's answer, no."""
        try:
            return await self.log_start(self.app, tp) > expected
        except Exception:  # unreachable, or the partition revoked: read again, and ask after give_up_s again
            log.warning("could not ask the broker where the log starts: reading the hole again",
                        extra={"topic": tp.topic, "partition": tp.partition, "expected": expected}, exc_info=True)
            return False

    async def _passed_over(self, tp, expected: int, offset: int) -> bool:
        now = self.clock()
        sought = self.sought.get(tp)
        if sought is not None and sought[0] == expected:
            if now - sought[1] < self.give_up_s:
                return False  # fetched before the seek took effect: it comes again after the missing ones
            # Read again give_up_s ago and still missing: queued behind a busy agent's backlog (wait on),
            # deleted by retention before anyone read it (go on without it), or the seek was lost (seek again).
            # Never by the clock alone: a worker behind a slow producer once took longer than give_up_s to
            # come round to the hole, passed over it and decided a later record first.
            if faust_compat.waiting_for_agents(self.app).get(tp, offset) <= expected:
                self.sought[tp] = (expected, now)
                return False
            if await self._deleted(tp, expected):
                log.warning("records missing and deleted before anyone read them: going on without them",
                            extra={"topic": tp.topic, "partition": tp.partition, "expected": expected, "offset": offset})
                return True
        log.warning("records missing before this one: reading again from the next expected offset",
                    extra={"topic": tp.topic, "partition": tp.partition, "restart_at": expected, "offset": offset})
        self.metrics.partition_stalls.labels(tp.topic).inc()
        self.sought[tp] = (expected, now)
        await self.app.consumer.seek(tp, expected)
        return False


async def fetch_positions(app, tps) -> dict:
    """Where the consumer fetches each partition next (Faust's Consumer.position), for the partitions
    whose position is known now; one that is being reset or was revoked meanwhile is left out."""
    positions = {}
    for tp in tps:
        try:
            position = await asyncio.wait_for(app.consumer.position(tp), POSITION_WAIT_S)
        except Exception:  # revoked under the look, or no valid position yet: the next look asks again
            continue
        if position is not None:
            positions[tp] = position
    return positions


async def committed_on_broker(app, tp) -> int:
    """The group's committed offset as the broker has it, else the earliest one (auto.offset.reset).
    Not Faust's own record of it, which a broker that lost its state (Tansu restarted) leaves stale."""
    committed = await faust_compat.ask_consumer(app, "committed", tp, within=BROKER_ANSWER_S)
    if committed is not None and committed >= 0:
        return committed
    return await log_start_on_broker(app, tp)


async def log_start_on_broker(app, tp) -> int:
    """The first offset the partition's log still holds."""
    return (await faust_compat.ask_consumer(app, "beginning_offsets", [tp], within=BROKER_ANSWER_S))[tp]


class PartitionWatchdog:
    """Consumer lag per assigned partition. A partition that stopped delivering, or whose commit is
    held at a record Faust skipped, is read again from its committed offset: the records Faust
    dropped come back (every step reproduces its outputs on a replay). Runs as a guarded timer,
    and gives up a look whenever the assignment moves under it."""

    interval_s = 5.0
    # A partition counts as stalled after this long with records waiting and nothing in flight.
    stall_after_s = 15.0
    # Records the consumer fetched past what Faust delivered, nothing in flight, this long: dropped.
    dropped_after_s = 10.0

    def __init__(self, app, metrics, agent_topics: frozenset[str], clock=monotonic):
        self.app, self.metrics, self.agent_topics, self.clock = app, metrics, agent_topics, clock
        # Each watched topic's stall count exists from start-up at 0: the alert and the dashboard name
        # it, and a worker that never stalls must still show it (a flat line, not no data).
        for topic in sorted(agent_topics):
            metrics.partition_stalls.labels(topic)
        self.stalls = StallDetector(self.stall_after_s)
        self.dropped = StallDetector(self.dropped_after_s)
        # The highest log end each partition's fetches have reported. Tansu reports the last batch's base
        # offset + 1 as a partition's end, below the consumer's position on any quiet partition whose last
        # batch held two records or more, so an end below the position says nothing; an end that went
        # backwards does: the broker lost the records (Tansu restarted empty; on Kafka, a topic recreated).
        self._highest: dict = {}

    async def look(self) -> None:
        app, consumer = self.app, self.app.consumer
        self.metrics.consumer_lag.clear()
        if app.rebalancing:
            return
        assigned = [tp for tp in consumer.assignment() if tp.topic in self.agent_topics]
        busy = faust_compat.in_flight(app) | set(faust_compat.waiting_for_agents(app))
        now = self.clock()
        positions = {}
        for tp in assigned:
            if faust_compat.committed_offset(app, tp) is None:
                # Nothing committed yet: where reading started, so the commit can check for holes from there.
                faust_compat.set_committed_offset(app, tp, await committed_on_broker(self.app, tp))
            read = faust_compat.read_offset(app, tp)
            # Faust leaves the read offset unset after an assignment until a record arrives; the
            # committed offset is then the next one due.
            positions[tp] = read + 1 if read is not None else (faust_compat.committed_offset(app, tp) or 0)
        self.stalls.progress(sum(positions.values()), now)
        fetched = await fetch_positions(app, [tp for tp in assigned if tp not in busy])
        for tp, next_offset in positions.items():
            if app.rebalancing or tp not in consumer.assignment():
                return  # revoked while this look awaited: the next look starts from the new assignment
            end = consumer.highwater(tp)
            if end is None:
                continue
            highest = self._highest.get(tp, end)
            self._highest[tp] = max(highest, end)
            if end < highest and end < next_offset:
                # The log end went back to before where this consumer stands: the broker lost the
                # records. Faust's offsets for the partition are stale: start over.
                self._highest[tp] = end
                restart_at = await committed_on_broker(self.app, tp)
                faust_compat.start_over(app, tp, restart_at)
                await self._read_again(tp, restart_at, "log end went back below the consumer's position: reading again",
                                       next_offset=next_offset, end=end)
                continue
            self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(end - next_offset, 0))
            # Acks past a missing record hold the commit at the hole (commit_only_what_was_processed).
            acked = faust_compat.acked_offsets(app, tp)
            committed = faust_compat.committed_offset(app, tp)
            if acked and committed is not None and self.stalls.stalled(("hole", tp), committed, min(acked),
                                                                        tp in busy, now):
                await self._read_again(tp, committed, "records skipped by the consumer: reading again from the "
                                       "committed offset", first_acked=min(acked))
                continue
            # Faust's read offset is the last record delivered, or, after a seek (an assignment's too), the
            # next one due: read + 1 overstates by one there. Only a fetch position past the commit says
            # records at the commit were fetched at all.
            fetched_past_commit = committed is not None and fetched.get(tp, next_offset) > committed
            if not acked and fetched_past_commit and self.stalls.stalled(("tail", tp), committed, next_offset,
                                                                         tp in busy, now):
                # Read past the commit, nothing acked and nothing in flight: the last records read
                # were dropped (no later record exposes the hole). Read them again.
                await self._read_again(tp, committed, "records read but never processed: reading again from the "
                                       "committed offset", next_offset=next_offset)
                continue
            # While flow is stopped (table recovery, a rebalance) Faust drops what it fetched on purpose and
            # seeks to the commit when flow resumes: only records dropped with flow running are lost so.
            # And until Faust has delivered a record of the partition since its assignment (the read offset
            # unset), its first fetch may still be waiting for flow control: a worker starting up.
            flowing = (consumer.flow_active and not getattr(app, "in_recovery", False)
                       and faust_compat.read_offset(app, tp) is not None)
            if self.dropped.stalled(tp, next_offset, fetched.get(tp) if flowing else None, tp in busy, now):
                # Faust's getmany stops handing out a fetched batch when flow is suspended under it:
                # the rest is gone from the consumer's buffer, its fetch position past it, and the read
                # offset before it. Only this partition waits, however busy the others keep the worker,
                # so it cannot wait for the worker to go idle (a test's ticket waited past 30 s so). From the
                # commit, not from next_offset, which may be one past a record never delivered (above).
                restart_at = committed if committed is not None else await committed_on_broker(self.app, tp)
                await self._read_again(tp, restart_at, "records fetched but never delivered: reading again",
                                       next_offset=next_offset, fetched=fetched[tp])
                continue
            if self.stalls.stalled(tp, next_offset, end, tp in busy, now) and self.stalls.idle(now):
                await self._read_again(tp, await committed_on_broker(self.app, tp),
                                       "partition stalled: reading again from the committed offset",
                                       next_offset=next_offset, end=end)
        for tp in [tp for tp in self._highest if tp not in assigned]:
            del self._highest[tp]
        self.stalls.keep_only([*assigned, *((kind, tp) for tp in assigned for kind in ("hole", "tail"))])
        self.dropped.keep_only(assigned)

    async def _read_again(self, tp, offset: int, why: str, **seen: int) -> None:
        """Seek `tp` back to `offset`, with a warning and a count: the watchdog's one repair."""
        log.warning(why, extra={"topic": tp.topic, "partition": tp.partition, "restart_at": offset, **seen})
        self.metrics.partition_stalls.labels(tp.topic).inc()
        await self.app.consumer.seek(tp, offset)

