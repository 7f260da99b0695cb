"""The Faust patches in streams/topology/faust_compat.py: each still wraps the code it means to, and does
what it is for. A Faust upgrade that moves that code fails here first."""
from __future__ import annotations

import asyncio
from collections import Counter
from types import SimpleNamespace

from aiokafka import AIOKafkaConsumer
from faust.transport.drivers import aiokafka as driver
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from streams.topology.faust_compat import InOrder

TOPIC = "soc.incidents"


def message(offset: int, generation: int) -> ConsumerMessage:
    return ConsumerMessage(TOPIC, 0, offset, 0.0, 0, [], b"k", b"v", b"k", b"v", generation_id=generation)


def test_the_fetch_wait_cap_wraps_the_consumer_faust_builds_and_sets_what_aiokafka_reads(pipeline):
    create = driver.AIOKafkaConsumerThread._create_worker_consumer
    assert create.__qualname__ == "cap_fetch_wait.<locals>._create_worker_consumer"

    async def build() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1")

    assert hasattr(asyncio.run(build()), "_fetch_max_wait_ms")


def test_acks_of_messages_fetched_before_the_latest_assignment_are_dropped(pipeline, monkeypatch):
    consumer = pipeline.app.consumer
    monkeypatch.setattr(pipeline.app.topics, "acks_enabled_for", lambda topic: True)
    tp = TP(TOPIC, 0)
    pipeline.app.consumer_generation_id = 7
    consumer._committed_offset[tp] = None
    stale, current = message(40, generation=6), message(3, generation=7)
    consumer._unacked_messages.add(stale)
    assert consumer.ack(stale) is False
    assert stale.acked and stale not in consumer._unacked_messages
    assert consumer.ack(current) is True
    assert consumer._acked[tp] == [3]


def test_each_assignment_gets_a_generation_of_its_own_even_when_the_broker_starts_again_at_zero(pipeline):
    seen = []

    class Thread:
        app = pipeline.app

        async def on_partitions_assigned(self, assigned, generation):
            seen.append((generation, self.app.consumer_generation_id))

    listener = driver.ConsumerRebalanceListener(Thread())
    asyncio.run(listener.on_partitions_assigned([]))
    asyncio.run(listener.on_partitions_assigned([]))
    (first, first_app), (second, second_app) = seen
    assert first == first_app and second == second_app and second == first + 1


def test_the_commit_stops_before_a_missing_record_and_records_no_gap(pipeline, monkeypatch):
    consumer = pipeline.app.consumer
    tp = TP(TOPIC, 1)
    consumer._committed_offset[tp] = 8
    consumer._acked[tp] = [9, 10, 11]
    consumer._acked_index[tp] = {9, 10, 11}
    # Faust's own rule lets a single missing record (8) through; here the commit waits for it.
    assert consumer._new_offset(tp) is None
    asyncio.run(consumer._add_gap(tp, 8, 8))
    assert not consumer._gap.get(tp)
    consumer._acked[tp] = [8, 9, 10, 11, 13]
    assert consumer._new_offset(tp) == 12
    assert consumer._acked[tp] == [13]
    # Nothing committed yet: the commit waits for the watchdog to say where reading started.
    consumer._committed_offset[tp] = None
    consumer._acked[tp] = [1, 2]
    assert consumer._new_offset(tp) is None


def test_the_compacted_whitelist_keeps_fausts_gaps(pipeline):
    consumer = pipeline.app.consumer
    tp = TP("soc.sites", 0)
    consumer._committed_offset[tp] = None
    asyncio.run(consumer._add_gap(tp, 3, 5))
    assert consumer._gap[tp]


def test_table_writes_take_the_given_event_and_the_stream_gets_its_own_back(pipeline):
    """take_events' reader reads stream.current_event when a batch is done: it must find the
    stream's own event there, not the one the batch wrote its table keys under."""
    from faust import current_event

    from streams.topology import faust_compat

    class Event:  # weak-referenceable, as Faust's events are
        pass

    stream = pipeline.app.stream(pipeline.app.channel())
    own, written_for = Event(), Event()
    stream._set_current_event(own)
    with faust_compat.writing_for(stream, written_for):
        assert current_event() is written_for and stream.current_event is written_for
    assert stream.current_event is own and current_event() is own


def test_table_recovery_counts_a_changelog_as_read_only_at_the_end_its_fetches_report(pipeline, monkeypatch):
    recovery = pipeline.app.tables.recovery
    assert type(recovery).active_remaining.__qualname__ == \
        "recover_to_the_fetched_end.<locals>.active_remaining_to_the_fetched_end"
    tp = TP("soc-stream-tests-dedup_key_to_tickets-changelog", 0)
    fetched = {}
    monkeypatch.setattr(pipeline.app.consumer, "highwater", lambda tp: fetched.get(tp))
    monkeypatch.setattr(recovery, "active_highwaters", Counter({tp: 0}))  # Tansu's listed end 1: last offset 0
    monkeypatch.setattr(recovery, "active_offsets", Counter({tp: 0}))  # the last batch's first record read
    assert not recovery.need_recovery()  # before any fetch: the listed end stands
    fetched[tp] = 21  # the fetch of that batch reports its true end
    assert recovery.active_remaining() == Counter({tp: 20}) and recovery.need_recovery()
    recovery.active_offsets[tp] = 20
    assert not recovery.need_recovery()
    fetched[tp] = 5  # a fetch reporting less (the broker lost data) never keeps recovery waiting
    assert not recovery.need_recovery()



def test_a_record_past_a_hole_is_held_back_unacked_and_the_partition_read_again_from_the_hole(pipeline,
                                                                                             monkeypatch):
    consumer, tp = pipeline.app.consumer, TP(TOPIC, 5)
    monkeypatch.setattr(pipeline.app, "consumer_generation_id", 11)
    consumer._committed_offset[tp] = 60
    sought = []

    async def seek(partition, offset):
        sought.append((partition, offset))

    monkeypatch.setattr(consumer, "seek", seek)
    now = [0.0]
    guard = InOrder(pipeline.app, pipeline.metrics, give_up_s=30, clock=lambda: now[0])

    def events(*offsets):
        return [SimpleNamespace(message=ConsumerMessage(TOPIC, 5, o, 0.0, 0, [], b"k", b"v", b"k", b"v",
                                                        generation_id=11)) for o in offsets]

    def offsets(kept):
        return [e.message.offset for e in kept]

    # 60..68 were dropped by the consumer: 69 and 70 come first.
    early = events(69, 70)
    consumer._unacked_messages.update(e.message for e in early)
    assert asyncio.run(guard.admitted(early)) == []
    assert sought == [(tp, 60)]  # once, for the whole hole
    assert all(e.message.acked and e.message not in consumer._unacked_messages for e in early)
    assert consumer._acked.get(tp, []) == []  # nothing recorded: the commit stays at 60
    # Read again from 60: everything in order, the held-back ones included; a replay below is let through.
    assert offsets(asyncio.run(guard.admitted(events(*range(60, 72))))) == list(range(60, 72))
    assert offsets(asyncio.run(guard.admitted(events(65, 72)))) == [65, 72]
    # A hole that reading again never fills (deleted before it was read) is passed over after give_up_s.
    assert asyncio.run(guard.admitted(events(80))) == [] and sought[-1] == (tp, 73)
    now[0] = 31.0
    assert offsets(asyncio.run(guard.admitted(events(81)))) == [81]
    # A new assignment starts from its committed offset again.
    monkeypatch.setattr(pipeline.app, "consumer_generation_id", 12)
    consumer._committed_offset[tp] = 90
    assert offsets(asyncio.run(guard.admitted(events(90, 91)))) == [90, 91]
