"""The pure parts of `soc repartition` (streams/ops/repartition.py): where a table key goes under N
partitions, and what a changelog holds once compacted. The whole procedure runs against a real broker
in tests/integration/test_repartition.py."""
from __future__ import annotations

import faust
from kafka.partitioner.default import murmur2 as java_murmur2

from streams.ops.repartition import Record, input_partition, latest, table_input_key, without_offsets

KEYS = [f"city:city_garbage:{x}:{y}".encode() for x in range(16700, 16710) for y in range(78090, 78100)]


def test_a_key_goes_where_the_producers_partitioner_sends_its_input():
    """The app leaves Faust's producer_partitioner unset, so Faust's aiokafka producer uses aiokafka's
    DefaultPartitioner: the Java client's murmur2 (kafka-python's copy here, as a second opinion)."""
    import inspect

    from streams.topology.app import build_app

    assert "producer_partitioner" not in inspect.getsource(build_app)
    assert faust.App("repartition-unit").conf.producer_partitioner is None
    for n in (5, 16):
        for key in KEYS:
            assert input_partition(key, n) == (java_murmur2(key) & 0x7FFFFFFF) % n
    moved = sum(input_partition(k, 2) != input_partition(k, 5) for k in KEYS)
    assert 0 < moved < len(KEYS)  # the reason the table must be rewritten at all


def test_changelog_keys_are_json_strings_of_the_input_key():
    """The table has no key_type, so Faust writes its str keys as JSON: hashing those bytes as they
    are would misplace every key."""
    table_key = "city:city_noise:16701:78100"
    changelog_key = faust.serializers.codecs.dumps("json", table_key)
    assert changelog_key == b'"city:city_noise:16701:78100"'
    assert table_input_key(changelog_key) == table_key.encode()
    quoted = [faust.serializers.codecs.dumps("json", k.decode()) for k in KEYS]
    assert any(input_partition(q, 5) != input_partition(k, 5) for q, k in zip(quoted, KEYS))


def test_latest_keeps_the_last_value_and_drops_tombstoned_keys():
    records = [Record(0, 0, b"a", b"1", 0), Record(1, 0, b"b", b"1", 0), Record(0, 1, b"a", b"2", 0),
               Record(1, 1, b"b", None, 0), Record(0, 2, None, b"x", 0)]
    assert {k: r.value for k, r in latest(records).items()} == {b"a": b"2"}


def test_a_key_state_moved_to_recreated_topics_forgets_the_old_offsets_but_not_its_recent_ids(config):
    """On a broker without CreatePartitions the topics are recreated and number their records from 0
    again: a mark of the old soc.incidents would take the key's next incidents for replays."""
    from datetime import timedelta

    from handlers import ticketing
    from handlers.lifecycle import Verdict
    from schemas.records import KeyState
    from tests.unit.test_replays import KEY, incident

    state = None
    for n in range(1, 6):
        state = ticketing.step(config, state, incident(n, timedelta(minutes=n)), KEY,
                               position=ticketing.Position(1, 500 + n)).state
    moved = KeyState.model_validate_json(without_offsets(state.model_dump_json().encode()))
    assert (moved.marks, moved.runs, moved.recent, moved.tickets) == ({}, [], state.recent, state.tickets)
    first_after = ticketing.step(config, moved, incident(6, timedelta(minutes=6)), KEY, position=ticketing.Position(1, 0))
    assert first_after.verdict is Verdict.applied and first_after.tickets[0].occurrences == 6
    again = ticketing.step(config, moved, incident(5, timedelta(minutes=5)), KEY, position=ticketing.Position(1, 3))
    assert again.verdict is Verdict.replayed
    assert without_offsets(None) is None
