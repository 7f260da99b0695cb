"""Honest health: a crashed agent fails /healthz and ends the process; a failing timer, or one whose
partitions are revoked while it awaits, is counted and never takes the app down."""
from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry

from streams.metrics import Metrics
from streams.topology.faust_compat import PartitionWatchdog
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


class Consumer:
    """The parts of Faust's consumer the watchdog reads, as plain data."""

    def __init__(self, tps, committed: int, read: int, end: int):
        self.assigned = set(tps)
        self._unacked_messages = set()
        self._committed_offset = {tp: committed for tp in tps}
        self._read_offset = {tp: read for tp in tps}
        self._acked, self._acked_index, self._gap = {}, {}, {}
        self.end, self.sought = end, []

    def assignment(self):
        return set(self.assigned)

    def highwater(self, tp):
        return self.end

    async def seek(self, tp, offset):
        self.sought.append((tp, offset))


async def test_the_last_records_read_and_never_processed_are_read_again():
    """Faust dropped the last records it fetched (offsets 29-31; nothing after them exposes a hole):
    after the stall time with nothing acked or in flight, they are read again from the commit."""
    tp = TP("soc.incidents", 6)

    class App:
        rebalancing = False
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


async def test_a_log_end_below_the_position_once_is_a_stale_highwater_not_a_lost_log():
    tp = TP("soc.incidents", 5)

    class App:
        rebalancing = False
        consumer = Consumer([tp], committed=16, read=15, end=15)

    watchdog = PartitionWatchdog(App(), metrics(), frozenset({"soc.incidents"}))
    await watchdog.look()
    assert App.consumer.sought == []
    App.consumer.end = 16  # the next fetch's highwater
    await watchdog.look()
    assert App.consumer.sought == []


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
        consumer = RevokingConsumer(tps)

    m = metrics()
    watchdog = PartitionWatchdog(App(), m, frozenset({"soc.incidents"}))
    tick = Health().guarded_timer(TimerApp(), m)(watchdog.interval_s, "watch_partitions")(watchdog.look)
    await tick()
    assert App.consumer.sought == []
    assert sample(m, "soc_timer_errors_total", timer="watch_partitions") == 0  # gave up cleanly, no error
