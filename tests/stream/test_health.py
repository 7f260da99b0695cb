"""Honest health: a crashed agent fails /healthz and ends the process; a failing timer, or one whose
partitions are revoked while it awaits, is counted and never takes the app down."""
from __future__ import annotations

import asyncio
from collections import deque
from types import SimpleNamespace

import pytest
from prometheus_client import CollectorRegistry

from streams.metrics import Metrics
from streams.topology.watchdog import PartitionWatchdog
from streams.topology.health import CRASH_EXIT_CODE, Health
from faust.types import TP

pytestmark = pytest.mark.asyncio(loop_scope="session")


class TimerApp:
    """Stands in for faust.App.timer: registering hands back the tick to call."""

    def timer(self, interval, name):
        return lambda fn: fn


def metrics() -> Metrics:
    return Metrics(CollectorRegistry())


def sample(m: Metrics, name: str, **labels) -> float:
    return m.registry.get_sample_value(name, labels) or 0.0


async def test_a_failing_timer_is_logged_counted_and_runs_again():
    m, calls = metrics(), []

    async def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("redis went away")

    tick = Health().guarded_timer(TimerApp(), m)(5.0, "escalate_overdue_tickets")(flaky)
    assert sample(m, "soc_timer_errors_total", timer="escalate_overdue_tickets") == 0  # the series exists
    await tick()
    await tick()
    assert len(calls) == 2
    assert sample(m, "soc_timer_errors_total", timer="escalate_overdue_tickets") == 1


async def test_a_crashed_agent_fails_health_and_exits_non_zero():
    exits = []
    exited = asyncio.Event()
    health = Health(exit_process=lambda code: (exits.append(code), exited.set()))
    registered = {}

    class AgentApp:
        def agent(self, channel, name):
            return lambda fn: registered.setdefault(name, fn)

    async def broken(stream):
        raise KeyError("boom")

    run = health.reporting_agent(AgentApp())(None, "decide_tickets")(broken)
    with pytest.raises(KeyError):
        await run(None)
    assert not health.ok and "decide_tickets" in health.failure and "KeyError" in health.failure
    await asyncio.wait_for(exited.wait(), 10)
    assert exits == [CRASH_EXIT_CODE]


class Queued:
    """Faust's conductor (app.topics) with one agent channel holding `events` in its queue."""

    def __init__(self, *tps):
        events = [SimpleNamespace(message=SimpleNamespace(tp=tp, offset=0)) for tp in tps]
        channel = SimpleNamespace(queue=SimpleNamespace(_queue=deque(events)))
        self._tp_index = {tp: [channel] for tp in tps}


NO_QUEUES = Queued()


class Consumer:
    """The parts of Faust's consumer the watchdog reads, as plain data."""

    def __init__(self, tps, committed: int, read: int, end: int, fetched: int | None = None):
        self.assigned = set(tps)
        self._unacked_messages = set()
        self._committed_offset = {tp: committed for tp in tps}
        self._read_offset = {tp: read for tp in tps}
        self._acked, self._acked_index, self._gap = {}, {}, {}
        self.end, self.sought = end, []
        self.flow_active = True
        # Where the underlying consumer fetches next: by default just past what Faust delivered.
        self.fetched = {tp: read + 1 if fetched is None else fetched for tp in tps}

    def assignment(self):
        return set(self.assigned)

    def highwater(self, tp):
        return self.end

    async def position(self, tp):
        return self.fetched[tp]

    async def seek(self, tp, offset):
        self.sought.append((tp, offset))


async def test_the_last_records_read_and_never_processed_are_read_again():
    """Faust dropped the last records it fetched (offsets 29-31; nothing after them exposes a hole):
    after the stall time with nothing acked or in flight, they are read again from the commit."""
    tp = TP("soc.incidents", 6)

    class App:
        rebalancing = False
        topics = NO_QUEUES
        consumer = Consumer([tp], committed=29, read=31, end=32)

    now = [100.0]
    m = metrics()
    watchdog = PartitionWatchdog(App(), m, frozenset({"soc.incidents"}), clock=lambda: now[0])
    await watchdog.look()
    now[0] += watchdog.stall_after_s - 1
    await watchdog.look()
    assert App.consumer.sought == []
    now[0] += 2
    await watchdog.look()
    assert App.consumer.sought == [(tp, 29)]
    assert sample(m, "soc_partition_stalls_total", topic="soc.incidents") == 1


async def test_a_quiet_partition_just_sought_to_its_commit_is_not_read_again_and_again():
    """After a seek (or an assignment) Faust's read offset is the next record due, not the last one
    delivered: committed 40, read 40, fetch position 40 and nothing more on the broker is a partition
    fully processed. It was taken for a dropped last record and sought back every 20 s for good."""
    tp = TP("soc.raw.city", 2)

    class App:
        rebalancing = False
        topics = NO_QUEUES
        consumer = Consumer([tp], committed=40, read=40, end=40, fetched=40)

    now = [100.0]
    watchdog = PartitionWatchdog(App(), metrics(), frozenset({"soc.raw.city"}), clock=lambda: now[0])
    for _ in range(12):
        await watchdog.look()
        now[0] += watchdog.interval_s
    assert App.consumer.sought == []


async def test_records_fetched_and_never_delivered_are_read_again_while_other_partitions_keep_the_worker_busy():
    """Faust stopped handing out a fetched batch (flow suspended under it): the consumer's position is
    past the records, Faust's read offset before them, nothing in flight. Another partition keeps
    moving, so the worker is never idle; the dropped records are read again anyway."""
    dropped, busy = TP("soc.raw.traffic", 3), TP("soc.raw.traffic", 4)

    class App:
        rebalancing = False
        topics = NO_QUEUES
        consumer = Consumer([dropped, busy], committed=21, read=20, end=25)

    App.consumer.fetched[dropped] = 25
    now = [100.0]
    watchdog = PartitionWatchdog(App(), metrics(), frozenset({"soc.raw.traffic"}), clock=lambda: now[0])

    async def look_later(seconds: float) -> None:
        now[0] += seconds
        App.consumer._read_offset[busy] += 1  # the busy partition moves on at every look
        App.consumer.fetched[busy] = App.consumer._read_offset[busy] + 1
        await watchdog.look()

    await look_later(0)
    await look_later(watchdog.dropped_after_s - 1)
    assert App.consumer.sought == []
    await look_later(2)
    assert App.consumer.sought == [(dropped, 21)]


@pytest.mark.parametrize("in_recovery,flow_active,read", [(True, False, 5), (False, True, None)],
                         ids=["tables recovering", "nothing delivered since the assignment"])
async def test_records_fetched_while_flow_is_stopped_are_left_to_faust(in_recovery, flow_active, read):
    """Table recovery stops flow: Faust drops what it had fetched and seeks to the commit when it resumes;
    and a starting worker's first fetch waits for flow control before anything is delivered."""
    tp = TP("soc.raw.traffic", 3)

    class App:
        rebalancing = False
        topics = NO_QUEUES
        consumer = Consumer([tp], committed=6, read=5, end=0, fetched=12)

    App.in_recovery = in_recovery
    App.consumer._read_offset[tp] = read
    App.consumer.flow_active = flow_active
    now = [100.0]
    watchdog = PartitionWatchdog(App(), metrics(), frozenset({"soc.raw.traffic"}), clock=lambda: now[0])
    for _ in range(5):
        await watchdog.look()
        now[0] += watchdog.dropped_after_s
    assert App.consumer.sought == []


async def test_records_fetched_but_still_in_flight_are_not_read_again():
    tp = TP("soc.raw.traffic", 3)

    class Message:
        def __init__(self, tp):
            self.tp = tp

    class App:
        rebalancing = False
        topics = NO_QUEUES
        consumer = Consumer([tp], committed=21, read=20, end=25, fetched=25)

    App.consumer._unacked_messages.add(Message(tp))  # an agent is working on the partition's records
    now = [100.0]
    watchdog = PartitionWatchdog(App(), metrics(), frozenset({"soc.raw.traffic"}), clock=lambda: now[0])
    for _ in range(5):
        await watchdog.look()
        now[0] += watchdog.dropped_after_s
    assert App.consumer.sought == []


async def test_records_queued_for_a_busy_agent_are_not_read_again():
    """Faust moved the read offset past records it queued for the agent, and the agent, busy with a long
    batch, has not taken them yet: they are in flight, not dropped, however long the agent takes."""
    tp = TP("soc.ticket-events", 3)

    class App:
        rebalancing = False
        topics = Queued(tp)
        consumer = Consumer([tp], committed=115, read=568, end=900, fetched=700)

    now = [100.0]
    watchdog = PartitionWatchdog(App(), metrics(), frozenset({"soc.ticket-events"}), clock=lambda: now[0])
    for _ in range(10):
        await watchdog.look()
        now[0] += watchdog.stall_after_s
    assert App.consumer.sought == []


async def test_a_log_end_below_the_position_once_is_a_stale_highwater_not_a_lost_log():
    tp = TP("soc.incidents", 5)

    class App:
        rebalancing = False
        topics = NO_QUEUES
        consumer = Consumer([tp], committed=16, read=15, end=15)

    watchdog = PartitionWatchdog(App(), metrics(), frozenset({"soc.incidents"}))
    await watchdog.look()
    assert App.consumer.sought == []
    App.consumer.end = 16  # the next fetch's highwater
    await watchdog.look()
    assert App.consumer.sought == []


async def test_a_log_end_that_stays_below_the_position_on_a_quiet_partition_is_never_a_lost_log():
    """Tansu reports the last batch's base offset + 1 as the end: a quiet partition whose last batch held
    three records shows an end two below the consumer's position at every look, for good."""
    tp = TP("soc.incidents", 5)

    class App:
        rebalancing = False
        topics = NO_QUEUES
        consumer = Consumer([tp], committed=18, read=17, end=16)

    now = [100.0]
    watchdog = PartitionWatchdog(App(), metrics(), frozenset({"soc.incidents"}), clock=lambda: now[0])
    for _ in range(10):
        await watchdog.look()
        now[0] += watchdog.interval_s
    assert App.consumer.sought == []


async def test_a_log_end_that_went_back_below_the_position_is_read_again_from_the_broker_s_commit():
    """The broker came back without the partition's records (Tansu restarted empty): the end reported
    falls from 16 to 2, below the position 18; reading starts again where the broker says."""
    tp = TP("soc.incidents", 5)

    class Client:
        def committed(self, tp):
            return None  # the broker lost the group's offsets with the records

        def beginning_offsets(self, tps):
            return {tp: 0 for tp in tps}

    class Thread:
        def _ensure_consumer(self):
            return Client()

        async def call_thread(self, fn, *args):
            return fn(*args)

    class App:
        rebalancing = False
        topics = NO_QUEUES
        consumer = Consumer([tp], committed=18, read=17, end=16)

    App.consumer._thread = Thread()
    watchdog = PartitionWatchdog(App(), metrics(), frozenset({"soc.incidents"}))
    await watchdog.look()
    App.consumer.end = 2
    await watchdog.look()
    assert App.consumer.sought == [(tp, 0)]
    assert App.consumer._committed_offset[tp] == 0


class RevokingConsumer:
    """A consumer whose partitions are revoked while the watchdog awaits the broker; highwater()
    raises for an unassigned partition as aiokafka does."""

    def __init__(self, tps):
        self.assigned = set(tps)
        self._unacked_messages = set()
        self._committed_offset, self._read_offset = {}, {}
        self._acked, self._acked_index, self._gap = {}, {}, {}
        self.sought = []
        consumer = self

        class Client:
            def committed(self, tp):
                return 3

            def beginning_offsets(self, tps):
                return {tp: 0 for tp in tps}

        class Thread:
            def _ensure_consumer(self):
                return Client()

            async def call_thread(self, fn, *args):
                consumer.assigned.clear()  # the rebalance lands while the timer awaits
                await asyncio.sleep(0)
                return fn(*args)

        self._thread = Thread()

    def assignment(self):
        return set(self.assigned)

    def highwater(self, tp):
        if tp not in self.assigned:
            raise AssertionError("Partition is not assigned")
        return 10

    async def seek(self, tp, offset):
        self.sought.append((tp, offset))


async def test_the_watchdog_gives_up_a_look_when_its_partitions_are_revoked_meanwhile():
    tps = [TP("soc.incidents", 0), TP("soc.incidents", 1)]

    class App:
        rebalancing = False
        topics = NO_QUEUES
        consumer = RevokingConsumer(tps)

    m = metrics()
    watchdog = PartitionWatchdog(App(), m, frozenset({"soc.incidents"}))
    tick = Health().guarded_timer(TimerApp(), m)(watchdog.interval_s, "watch_partitions")(watchdog.look)
    await tick()
    assert App.consumer.sought == []
    assert sample(m, "soc_timer_errors_total", timer="watch_partitions") == 0  # gave up cleanly, no error
