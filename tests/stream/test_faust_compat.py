"""The Faust patches in streams/topology/faust_compat/: each still wraps the code it means to, and does
what it is for. A Faust upgrade that moves that code fails here first."""
from __future__ import annotations

import asyncio
from collections import Counter
from types import SimpleNamespace

import faust
from aiokafka import AIOKafkaConsumer
from faust.transport.drivers import aiokafka as driver
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from streams.topology import awaiting, faust_compat
from streams.topology.faust_compat import waiting_for_agents
from streams.topology.watchdog import InOrder

TOPIC = "soc.incidents"


def message(offset: int, generation: int, partition: int = 0) -> ConsumerMessage:
    return ConsumerMessage(TOPIC, partition, offset, 0.0, 0, [], b"k", b"v", b"k", b"v", generation_id=generation)


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


def test_each_app_gets_the_patches_with_its_own_settings(pipeline, tmp_path):
    other = faust.App("soc-stream-tests-other", broker="kafka://127.0.0.1:1", store="memory://",
                      datadir=str(tmp_path), web_enabled=False)
    faust_compat.apply_fixes(other, 250, frozenset({"soc.raw.flood"}))
    plain = faust.App("soc-stream-tests-plain", broker="kafka://127.0.0.1:1", store="memory://",
                      datadir=str(tmp_path), web_enabled=False)
    assert faust_compat.fixes(other).fetch_max_wait_ms == 250
    assert faust_compat.fixes(pipeline.app).fetch_max_wait_ms == pipeline.settings.fetch_max_wait_ms
    tp = TP(TOPIC, 2)  # soc.incidents: gapless for the pipeline's app, not for the other two
    for app in (pipeline.app, other, plain):
        app.consumer._committed_offset[tp] = None
        asyncio.run(app.consumer._add_gap(tp, 3, 5))
    assert not pipeline.app.consumer._gap.get(tp)
    assert other.consumer._gap[tp] and plain.consumer._gap[tp]


def test_the_compacted_whitelist_keeps_fausts_gaps(pipeline):
    consumer = pipeline.app.consumer
    tp = TP("soc.sites", 0)
    consumer._committed_offset[tp] = None
    asyncio.run(consumer._add_gap(tp, 3, 5))
    assert consumer._gap[tp]


def test_a_table_write_of_our_own_sets_the_key_and_makes_the_changelog_record_recovery_reads_back(pipeline):
    table = pipeline.dedup_key_to_tickets
    buffered = pipeline.app.producer.buffer.size
    topic, key, value = faust_compat.set_for_changelog(table, "flood:flood_waterlogging:JS-1", b'{"dedup_key": 1}')
    assert table.get("flood:flood_waterlogging:JS-1") == b'{"dedup_key": 1}'
    assert pipeline.app.producer.buffer.size == buffered  # nothing handed to Faust's producer buffer
    assert topic == table.changelog_topic.get_topic_name()
    # Recovery decodes the record through the changelog topic and applies it to the store.
    del table.data["flood:flood_waterlogging:JS-1"]
    record = ConsumerMessage(topic, 3, 0, 0.0, 0, [], key, value, None, len(key), len(value or b""))
    event = asyncio.run(table.changelog_topic.decode(record))
    table.data.apply_changelog_batch([event], to_key=table._to_key, to_value=table._to_value)
    assert table.get("flood:flood_waterlogging:JS-1") == b'{"dedup_key": 1}'


def test_a_batch_is_acked_once_the_body_asks_for_the_next_and_never_if_the_body_raised(pipeline, monkeypatch):
    consumer = pipeline.app.consumer
    monkeypatch.setattr(pipeline.app.topics, "acks_enabled_for", lambda topic: True)
    monkeypatch.setattr(pipeline.app, "consumer_generation_id", 3)
    tp = TP(TOPIC, 6)
    consumer._committed_offset[tp] = 0

    class Stream:
        """take_events as Faust's: each batch acked when the body leaves it, an exception included."""

        async def take_events(self, size, within):
            for offsets in ([0, 1], [2, 3]):
                events = [SimpleNamespace(message=message(o, generation=3, partition=6)) for o in offsets]
                try:
                    yield events
                finally:
                    for event in events:
                        event.message.ack(consumer)

    async def run(fail_on: int) -> None:
        batches = faust_compat.finished_batches(Stream(), 2, 0.01)
        async for events in batches:
            assert consumer._acked.get(tp, []) == ([] if events[0].message.offset == 0 else [0, 1])
            if events[0].message.offset == fail_on:
                await batches.aclose()  # as the loop does when the body's exception drops the generator
                raise RuntimeError("a send failed")

    try:
        asyncio.run(run(fail_on=2))
    except RuntimeError:
        pass
    assert consumer._acked[tp] == [0, 1]  # the second batch, whose body raised, is not acked


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
    now, log_starts_at = [0.0], [0]

    async def log_start(app, partition):
        if log_starts_at[0] is None:
            raise ConnectionError("no broker")
        return log_starts_at[0]

    guard = InOrder(pipeline.app, pipeline.metrics, give_up_s=30, clock=lambda: now[0], log_start=log_start)

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
    # A hole still on the log and not filled within give_up_s (a busy worker, a lost seek) is read again:
    # a later record is never decided first because the clock ran.
    assert asyncio.run(guard.admitted(events(80))) == [] and sought[-1] == (tp, 73)
    now[0] = 31.0
    assert asyncio.run(guard.admitted(events(81))) == [] and sought[-2:] == [(tp, 73), (tp, 73)]
    # Without the broker's answer, it is read again too.
    log_starts_at[0] = None
    now[0] = 62.0
    assert asyncio.run(guard.admitted(events(81))) == [] and sought[-1] == (tp, 73) and len(sought) == 4
    # One the log no longer holds (deleted by retention before it was read) is passed over.
    log_starts_at[0] = 80
    now[0] = 93.0
    assert offsets(asyncio.run(guard.admitted(events(81)))) == [81]
    # A new assignment starts from its committed offset again.
    monkeypatch.setattr(pipeline.app, "consumer_generation_id", 12)
    consumer._committed_offset[tp] = 90
    assert offsets(asyncio.run(guard.admitted(events(90, 91)))) == [90, 91]


def test_a_hole_at_the_head_of_a_partition_without_a_commit_is_seen_from_where_the_broker_starts_it(pipeline,
                                                                                                  monkeypatch):
    # Faust records "nothing committed" (and "0 committed") as None: the broker's answer (the group's commit,
    # else the log's start) is where the partition starts, so offset 1 delivered first waits for offset 0.
    consumer, tp = pipeline.app.consumer, TP(TOPIC, 3)
    monkeypatch.setattr(pipeline.app, "consumer_generation_id", 21)
    consumer._committed_offset.pop(tp, None)
    sought, asked = [], []

    async def seek(partition, offset):
        sought.append((partition, offset))

    async def start_of(app, partition):
        asked.append(partition)
        return 0

    monkeypatch.setattr(consumer, "seek", seek)
    guard = InOrder(pipeline.app, pipeline.metrics, give_up_s=30, clock=lambda: 0.0, start_of=start_of)

    def events(*offsets):
        return [SimpleNamespace(message=ConsumerMessage(TOPIC, 3, o, 0.0, 0, [], b"k", b"v", b"k", b"v",
                                                        generation_id=21)) for o in offsets]

    early = events(1, 2)
    consumer._unacked_messages.update(e.message for e in early)
    assert asyncio.run(guard.admitted(early)) == []
    assert sought == [(tp, 0)] and asked == [tp]
    assert [e.message.offset for e in asyncio.run(guard.admitted(events(0, 1, 2)))] == [0, 1, 2]
    assert asked == [tp]  # asked once per partition and assignment


def test_without_the_brokers_answer_the_first_record_delivered_starts_the_partition(pipeline, monkeypatch):
    consumer, tp = pipeline.app.consumer, TP(TOPIC, 4)
    monkeypatch.setattr(pipeline.app, "consumer_generation_id", 22)
    consumer._committed_offset.pop(tp, None)

    async def unreachable(app, partition):
        raise ConnectionError("no broker")

    guard = InOrder(pipeline.app, pipeline.metrics, start_of=unreachable)
    kept = asyncio.run(guard.admitted([SimpleNamespace(message=ConsumerMessage(
        TOPIC, 4, 7, 0.0, 0, [], b"k", b"v", b"k", b"v", generation_id=22))]))
    assert [e.message.offset for e in kept] == [7]


def test_a_hole_whose_records_wait_in_the_agents_queue_is_waited_for_without_reading_again(pipeline, monkeypatch):
    consumer, tp = pipeline.app.consumer, TP(TOPIC, 6)
    monkeypatch.setattr(pipeline.app, "consumer_generation_id", 31)
    consumer._committed_offset[tp] = 10
    sought, now = [], [0.0]

    async def seek(partition, offset):
        sought.append((partition, offset))

    async def log_start(app, partition):
        return 0

    monkeypatch.setattr(consumer, "seek", seek)
    guard = InOrder(pipeline.app, pipeline.metrics, give_up_s=30, clock=lambda: now[0], log_start=log_start)

    def events(*offsets):
        return [SimpleNamespace(message=ConsumerMessage(TOPIC, 6, o, 0.0, 0, [], b"k", b"v", b"k", b"v",
                                                        generation_id=31)) for o in offsets]

    assert asyncio.run(guard.admitted(events(40))) == [] and sought == [(tp, 10)]
    # Read again, 10 onwards now wait in the agent's queue behind a backlog the agent is still working on.
    monkeypatch.setattr(faust_compat, "waiting_for_agents", lambda app: {tp: 10})
    now[0] = 31.0
    assert asyncio.run(guard.admitted(events(41))) == [] and sought == [(tp, 10)]
    now[0] = 70.0
    assert asyncio.run(guard.admitted(events(42))) == [] and sought == [(tp, 10)]
    assert [e.message.offset for e in asyncio.run(guard.admitted(events(*range(10, 43))))] == list(range(10, 43))


def test_a_record_the_conductor_queued_for_an_agent_is_waiting_and_not_yet_tracked_as_in_flight(pipeline):
    """What waiting_for_agents reads for the guards: the conductor moves a record into the agent's channel
    queue, where Faust does not count it as unacked until the agent's stream takes it."""
    app, tp = pipeline.app, TP(TOPIC, 2)
    channel = app.topic(TOPIC, key_serializer="raw", value_serializer="raw").clone(is_iterator=True)
    flowing = app.flow_control.is_active()
    app.topics.add(channel)
    try:
        app.topics._update_tp_index({tp})
        deliver = app.topics._build_handler(tp, app.topics._tp_index[tp])
        record = message(12, generation=1, partition=2)
        app.flow_control.resume()
        app.loop.run_until_complete(asyncio.wait_for(deliver(record), 10))
        assert waiting_for_agents(app) == {tp: 12}
        assert record not in app.consumer._unacked_messages
    finally:  # the app is the session's
        app.topics.discard(channel)
        app.topics._tp_index.clear()
        if not flowing:
            app.flow_control.suspend()


def test_the_task_dump_reaches_the_consumer_threads_loop_and_follows_an_await_chain(pipeline):
    async def inner():
        await asyncio.sleep(10)

    async def outer():
        await inner()

    async def look():
        task = asyncio.ensure_future(outer())
        await asyncio.sleep(0)
        try:
            return awaiting.await_chain(task.get_coro()), awaiting.awaiting(pipeline.app)
        finally:
            task.cancel()

    chain, found = asyncio.run(look())
    assert [link.rsplit(" ", 1)[-1] for link in chain[:3]] == ["outer", "inner", "sleep"]
    assert isinstance(faust_compat.consumer_thread_loop(pipeline.app), asyncio.AbstractEventLoop)
    assert set(found) == {"tasks", "consumer_thread", "own"}


def test_the_aiokafka_consumer_is_reached_in_fausts_consumer_thread_as_ask_consumer_reaches_it(pipeline):
    thread = pipeline.app.consumer._thread
    assert callable(thread._ensure_consumer)
    assert asyncio.iscoroutinefunction(thread.call_thread)


def test_the_commit_and_the_acks_the_guards_read_and_set_are_those_faust_acks_and_commits_by(pipeline, monkeypatch):
    app, consumer, tp = pipeline.app, pipeline.app.consumer, TP(TOPIC, 5)
    monkeypatch.setattr(app.topics, "acks_enabled_for", lambda topic: True)
    generation = app.consumer_generation_id
    try:
        faust_compat.set_committed_offset(app, tp, 20)
        assert faust_compat.committed_offset(app, tp) == 20
        assert consumer.ack(message(19, generation, partition=5)) is False  # before the commit: refused
        for offset in (20, 21):
            assert consumer.ack(message(offset, generation, partition=5))
        assert faust_compat.acked_offsets(app, tp) == [20, 21]
        # The broker lost the records: their acks go, and the commit starts again where it says.
        faust_compat.start_over(app, tp, 4)
        assert faust_compat.acked_offsets(app, tp) == [] and faust_compat.committed_offset(app, tp) == 4
        assert consumer.ack(message(4, generation, partition=5))
        assert consumer._new_offset(tp) == 5
    finally:  # the app is the session's
        for offsets in (consumer._acked, consumer._acked_index, consumer._committed_offset):
            offsets.pop(tp, None)


def test_the_read_offset_and_the_records_in_flight_are_what_faust_keeps_for_a_seek_and_a_delivery(pipeline,
                                                                                                    monkeypatch):
    app, consumer, tp = pipeline.app, pipeline.app.consumer, TP(TOPIC, 4)
    monkeypatch.setattr(app.topics, "acks_enabled_for", lambda topic: True)

    async def no_broker(partition, offset):
        return None

    monkeypatch.setattr(consumer, "_seek", no_broker)
    try:
        asyncio.run(consumer.seek(tp, 12))
        assert faust_compat.read_offset(app, tp) == 12
        asyncio.run(consumer.seek(tp, 0))
        assert faust_compat.read_offset(app, tp) is None  # Faust keeps a seek to 0 as none
        record = message(12, app.consumer_generation_id, partition=4)
        consumer.track_message(record)  # what the conductor does before a stream gets the record
        assert tp in faust_compat.in_flight(app)
        consumer.ack(record)
        assert tp not in faust_compat.in_flight(app)
    finally:
        for offsets in (consumer._read_offset, consumer._acked, consumer._acked_index, consumer._committed_offset):
            offsets.pop(tp, None)
