"""`soc repartition`: change the partition count of the keyed topics without losing the ticket table.

Why a command: dedup_key_to_tickets is co-partitioned with soc.incidents and soc.ticket-events. Faust
writes a key's changelog record to the partition of the input record being processed (tables.base:
`event.message.partition`), and that input partition is aiokafka's DefaultPartitioner (murmur2 of the
key bytes, as Java's) over the topic's partition count. Kafka does not move existing records when a
topic grows, so after `--alter` every key whose hash lands elsewhere is recovered into a partition
its inputs no longer reach, and the memory store drops it when that partition is not assigned.

So, with every worker stopped (the sources may go on sending), this command:
1. reads the latest value of every key from the old app id's changelog;
2. writes each one to a new changelog named for the new app id with N partitions, at the partition
   the producer's partitioner gives its input key under N, and reads it back. Values are unchanged
   but for the soc.incidents offsets a key's state names (its marks and runs): a recreated topic
   numbers its records from 0 again, where those offsets would pass new incidents off as replays;
3. keeps in a file what the resize must not lose: the records of the table's inputs that the old
   group had not consumed (and, on a recreate, of every recreated topic, and each ticket's latest version);
4. grows the topics whose count is SOC_PARTITIONS to N (CreatePartitions), or, on a broker without
   CreatePartitions (the embedded Tansu), deletes and recreates them;
5. writes the kept records again, each to its key's partition under N, in their order;
6. gives the new consumer group (the new app id) the old group's committed offsets, moved past
   what step 5 wrote again, so the new workers neither replay the raw topics nor skip anything.
The old app id's changelog and group are left as they were: until step 4 nothing is lost by going
back. A run stopped at any step can be run again.
"""
from __future__ import annotations

import base64
import logging
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from streams import topics
from streams.ops.bootstrap import connect, durable, ensure_topics, partition_counts
from streams.settings import Settings

log = logging.getLogger("soc.repartition")

TABLE = "dedup_key_to_tickets"
# The table's inputs: fully consumed before its state is moved, or an incident would be decided twice
# or against the wrong state.
TABLE_INPUTS = (topics.INCIDENTS, topics.TICKET_EVENTS)
READ_TIMEOUT_MS = 2000


class RepartitionError(Exception):
    """A precondition does not hold or a step failed; str(): what, and what to do."""


@dataclass
class Plan:
    old_app_id: str
    new_app_id: str
    partitions: int
    current: int  # the keyed topics' count before
    keyed: list[str]  # the topics whose count is SOC_PARTITIONS
    grow: list[str]  # those of them still at the old count
    recreate: bool  # the broker has no CreatePartitions: delete and create them again
    old_offsets: dict = field(default_factory=dict)  # TopicPartition -> committed offset of the old group


@dataclass(frozen=True)
class Record:
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int


def input_partition(input_key: bytes, partitions: int) -> int:
    """The partition Faust's producer (aiokafka's DefaultPartitioner) sends a keyed record to."""
    from aiokafka.partitioner import DefaultPartitioner

    return DefaultPartitioner()(input_key, list(range(partitions)), list(range(partitions)))


def table_input_key(changelog_key: bytes) -> bytes:
    """The input key a changelog key came from. The table has no key_type, so Faust serializes its
    str keys as JSON (tables.base._serializer_from_type): the changelog key is `"<dedup key>"`, the
    input key the dedup key's UTF-8 (streams/topology/hop2.py). Hashing the changelog bytes as they
    are would place every key wrongly."""
    from faust.serializers import codecs

    key = codecs.loads("json", changelog_key)
    if not isinstance(key, str):
        raise RepartitionError(f"changelog key {changelog_key[:80]!r} is not a JSON string")
    return key.encode("utf-8")


def read_topic(bootstrap, security: dict, topic: str) -> tuple[list[Record], dict[int, int]]:
    """Every record of `topic` from the beginning to the end it had when the read started, and those ends."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None, **security)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        if not tps:
            return [], {}
        end = _ends(consumer, tps)
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        records: list[Record] = []
        remaining = {tp for tp in tps if end[tp] > 0}
        while remaining:
            for tp, messages in consumer.poll(timeout_ms=READ_TIMEOUT_MS).items():
                records += [Record(m.partition, m.offset, m.key, m.value, m.timestamp)
                            for m in messages if m.offset < end[tp]]
            remaining = {tp for tp in remaining if consumer.position(tp) < end[tp]}
        return records, {tp.partition: end[tp] for tp in tps}
    finally:
        consumer.close()


def _ends(consumer, tps: list) -> dict:
    """Each partition's end offset. Tansu 0.6 answers ListOffsets with the last batch's base offset + 1
    (5 records produced in one batch: end 1), while its fetch responses carry the true high watermark:
    so the end is the larger of the two, read by fetching each partition's last batch. On Kafka both agree."""
    listed = consumer.end_offsets(tps)
    consumer.assign(tps)
    for tp in tps:
        consumer.seek(tp, max(listed[tp] - 1, 0))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(consumer.highwater(tp) is None for tp in tps if listed[tp] > 0):
        consumer.poll(timeout_ms=200)
    return {tp: max(listed[tp], consumer.highwater(tp) or 0) for tp in tps}


def end_offsets(bootstrap, security: dict, counts: dict[str, int]) -> dict:
    """TopicPartition -> end offset, for every partition of `counts`' topics (see _ends)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, **security)
    try:
        return _ends(consumer, [TopicPartition(t, p) for t, n in counts.items() for p in range(n)])
    finally:
        consumer.close()


def latest(records: Iterable[Record]) -> dict[bytes, Record]:
    """Key -> its last record, as compaction keeps it; a tombstone removes the key."""
    out: dict[bytes, Record] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        if record.key is None:
            continue
        if record.value is None:
            out.pop(record.key, None)
        else:
            out[record.key] = record
    return out


def committed(bootstrap, security: dict, group: str, counts: dict[str, int]) -> dict:
    """TopicPartition -> the group's committed offset, for every partition of `counts`' topics that has one."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, **security)
    try:
        found = {}
        for topic, count in counts.items():
            for partition in range(count):
                tp = TopicPartition(topic, partition)
                offset = consumer.committed(tp)
                if offset is not None:
                    found[tp] = offset
        return found
    finally:
        consumer.close()


def commit(bootstrap, security: dict, group: str, offsets: dict) -> None:
    """Commit `offsets` for `group` without joining it (the group has no members yet)."""
    from kafka import KafkaConsumer
    from kafka.structs import OffsetAndMetadata

    if not offsets:
        return
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, **security)
    try:
        consumer.assign(list(offsets))
        consumer.commit({tp: OffsetAndMetadata(offset, "soc repartition", -1) for tp, offset in offsets.items()})
    finally:
        consumer.close()


def supports_create_partitions(admin, topic: str, partitions: int) -> bool:
    """Whether the broker has CreatePartitions (Tansu 0.6 has not): asked with validate_only, which changes nothing."""
    from kafka.errors import IncompatibleBrokerVersion, InvalidPartitionsError, UnsupportedVersionError

    try:
        admin.create_partitions({topic: partitions}, validate_only=True)
    except (IncompatibleBrokerVersion, UnsupportedVersionError):
        return False
    except InvalidPartitionsError:  # already that many (a run stopped half way): the broker has the API
        pass
    return True


def group_members(admin, group: str) -> int | None:
    """How many members the group has, or None when the broker cannot say (Tansu's DescribeGroups
    answer does not parse in kafka-python 3)."""
    describe = getattr(admin, "describe_groups", None) or getattr(admin, "describe_consumer_groups", None)
    try:
        described = describe([group])
    except Exception as exc:  # noqa: BLE001 - best effort: the offset checks below still stand
        log.warning("the broker did not describe group %s (%s): relying on the offset checks alone", group, exc)
        return None
    one = described[0] if isinstance(described, list) else described.get(group, {})
    members = one.get("members") if isinstance(one, dict) else getattr(one, "members", None)
    return None if members is None else len(members)


def plan(settings: Settings, admin, partitions: int, new_app_id: str, old_app_id: str) -> Plan:
    """Check every precondition; raise RepartitionError naming the first that fails. Changes nothing."""
    security = settings.kafka_client_kwargs()
    bootstrap = settings.bootstrap_servers
    if new_app_id == old_app_id:
        raise RepartitionError("--to-app-id must differ from the current app id (SOC_APP_ID): the new "
                               "changelog and consumer group are named for it")
    if set(topics.TABLES) != {TABLE}:
        raise RepartitionError(f"the app has tables {sorted(topics.TABLES)}: this command moves {TABLE} only")
    counts = partition_counts(admin)
    old_changelog = topics.changelog_topic(old_app_id, TABLE)
    if old_changelog not in counts:
        raise RepartitionError(f"no changelog {old_changelog}: is {old_app_id} the app id the workers ran with?")
    keyed = [s.name for s in topics.topic_specs() if s.partitions is None]
    missing = [name for name in keyed if name not in counts]
    if missing:
        raise RepartitionError(f"topics missing: {', '.join(missing)} (run `soc topics` with the current settings)")
    # The old changelog keeps the old count whatever happens: a run stopped half way is run again,
    # and the topics it already resized are left as they are.
    current = counts[old_changelog]
    if partitions <= current:
        raise RepartitionError(f"--partitions {partitions}: the keyed topics have {current}; Kafka can only add partitions")
    odd = {name: counts[name] for name in keyed if counts[name] not in (current, partitions)}
    if odd:
        raise RepartitionError(f"topics with neither {current} nor {partitions} partitions: "
                               f"{', '.join(f'{n} ({c})' for n, c in odd.items())}")
    grow = [name for name in keyed if counts[name] == current]
    new_changelog = topics.changelog_topic(new_app_id, TABLE)
    if counts.get(new_changelog, partitions) != partitions:
        raise RepartitionError(f"{new_changelog} exists with {counts[new_changelog]} partitions, not {partitions}")
    members = group_members(admin, old_app_id)
    if members:
        raise RepartitionError(f"consumer group {old_app_id} has {members} members: stop every worker first")
    consumed = {name: counts[name] for name in keyed + [topics.SITES] if name in counts}
    if committed(bootstrap, security, new_app_id, consumed):
        raise RepartitionError(f"consumer group {new_app_id} already has committed offsets: workers have run "
                               "with it, so its table may already hold newer state; choose another app id")
    old_offsets = committed(bootstrap, security, old_app_id, consumed)
    recreate = not supports_create_partitions(admin, (grow or keyed)[0], partitions)
    if recreate and topics.TICKETS in grow and any(tp.topic == topics.TICKETS for tp in old_offsets):
        # soc.tickets comes back as one record per ticket, so the notifier's position in it cannot be
        # carried: the new group starts at its end, and must not skip what the old one had not read.
        ends = end_offsets(bootstrap, security, {topics.TICKETS: counts[topics.TICKETS]})
        behind = [f"{tp.topic}[{tp.partition}] {old_offsets.get(tp, 0)}/{end}" for tp, end in sorted(ends.items())
                  if end > old_offsets.get(tp, 0)]
        if behind:
            raise RepartitionError(f"the notifier of {old_app_id} has not read all of soc.tickets (committed/end): "
                                   f"{', '.join(behind)}; start one worker until it has, then stop it")
    return Plan(old_app_id, new_app_id, partitions, current, keyed, grow, recreate, old_offsets)


def without_offsets(value: bytes | None) -> bytes | None:
    """A key's state for the resized topics: the offsets it names on soc.incidents dropped (its recent
    ids still tell a replay of what the old group had not committed)."""
    if value is None:
        return None
    state = orjson.loads(value)
    if not isinstance(state, dict) or not {"marks", "runs"} & state.keys():
        return value
    return orjson.dumps({k: v for k, v in state.items() if k not in ("marks", "runs")})


def write_changelog(settings: Settings, p: Plan) -> int:
    """Steps 1-2: the old changelog's latest values at their new partitions; returns the key count."""
    security = settings.kafka_client_kwargs()
    bootstrap = settings.bootstrap_servers
    old_changelog = topics.changelog_topic(p.old_app_id, TABLE)
    new_changelog = topics.changelog_topic(p.new_app_id, TABLE)
    records, old_ends = read_topic(bootstrap, security, old_changelog)
    state = latest(records)
    placed = {key: input_partition(table_input_key(key), p.partitions) for key in state}
    # The configs soc worker gives a changelog (compacted, min.insync.replicas on a replicated cluster).
    ensure_topics(bootstrap, p.partitions, settings.replication_factor,
                  [topics.TopicSpec(new_changelog, None, topics.COMPACT)], security=security)
    produce(bootstrap, security, new_changelog,
            [(placed[key], key, without_offsets(r.value), r.timestamp) for key, r in state.items()])
    moved, _ = read_topic(bootstrap, security, new_changelog)
    got = {key: (r.partition, r.value) for key, r in latest(moved).items()}
    want = {key: (placed[key], without_offsets(r.value)) for key, r in state.items()}
    if got != want:
        wrong = sorted(k for k in want.keys() | got.keys() if got.get(k) != want.get(k))
        raise RepartitionError(f"{new_changelog} read back differs for {len(wrong)} keys, e.g. {wrong[0]!r}: "
                               f"(partition, value) {str(got.get(wrong[0]))[:120]}, expected {str(want.get(wrong[0]))[:120]}")
    if {tp.partition: end for tp, end in end_offsets(bootstrap, security, {old_changelog: len(old_ends)}).items()} != old_ends:
        raise RepartitionError(f"{old_changelog} changed while it was copied: a worker is running; stop it and run again")
    return len(state)


def produce(bootstrap, security: dict, topic: str, rows: list[tuple[int, bytes, bytes | None, int]]) -> None:
    from kafka import KafkaProducer

    # One record per batch (batch_size 1: a batch always takes its first record). Tansu 0.6's ListOffsets
    # end is the last batch's base offset + 1, and Faust's table recovery reads to that end: with batched
    # writes a worker recovered 5 of 21 keys, one per partition. On Kafka this costs only throughput.
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0, batch_size=1,
                             max_request_size=16 * 1024 * 1024, **security)
    try:
        futures = [producer.send(topic, key=key, value=value, partition=partition,
                                 timestamp_ms=timestamp if timestamp and timestamp > 0 else None)
                   for partition, key, value, timestamp in rows]
        producer.flush()
        for future in futures:
            future.get(timeout=30)  # raises the broker's error, if any
    finally:
        producer.close()


def tail_topics(p: Plan) -> list[str]:
    """The topics whose unconsumed records are moved to their partition under N: the table's inputs
    (a key's undecided incidents and commands must reach the partition its state now lives in), and
    on a recreate every recreated topic but soc.tickets (copied whole), as their partitions go."""
    return [t for t in p.keyed if t != topics.TICKETS] if p.recreate else list(TABLE_INPUTS)


def backup_path(settings: Settings, p: Plan, topic: str) -> Path:
    return Path(settings.data_dir) / f"repartition-{p.new_app_id}-{topic}.jsonl"


def keep(settings: Settings, p: Plan) -> dict[str, tuple[dict[int, int], list[Record]]]:
    """Step 3: what must outlive the resize, written to a file first (data_dir), so that a run stopped
    after the resize finds it when run again: topic -> (the old end offsets, the records to write
    again). The unconsumed tail of each tail topic, and on a recreate the latest version of every ticket."""
    security = settings.kafka_client_kwargs()
    bootstrap = settings.bootstrap_servers
    wanted = tail_topics(p) + ([topics.TICKETS] if p.recreate else [])
    kept = {}
    for topic in wanted:
        path = backup_path(settings, p, topic)
        if topic not in p.grow:  # resized by an earlier run: what it kept, if it got that far
            if path.exists():
                lines = path.read_text().splitlines()
                ends = {int(k): v for k, v in orjson.loads(lines[0]).items()}
                kept[topic] = ends, [_record(orjson.loads(line)) for line in lines[1:]]
            continue
        records, ends = read_topic(bootstrap, security, topic)
        if topic == topics.TICKETS:
            records = list(latest(records).values())
        else:
            start = {tp.partition: o for tp, o in p.old_offsets.items() if tp.topic == topic}
            records = [r for r in records if r.offset >= start.get(r.partition, 0)]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(orjson.dumps({str(k): v for k, v in ends.items()}) + b"\n"
                         + b"".join(orjson.dumps(_row(r)) + b"\n" for r in records))
        kept[topic] = ends, records
    return kept


def _row(r: Record) -> list:
    b64 = lambda b: None if b is None else base64.b64encode(b).decode()  # noqa: E731
    return [r.partition, r.offset, b64(r.key), b64(r.value), r.timestamp]


def _record(row: list) -> Record:
    unb64 = lambda t: None if t is None else base64.b64decode(t)  # noqa: E731
    return Record(row[0], row[1], unb64(row[2]), unb64(row[3]), row[4])


def resize_topics(settings: Settings, admin, p: Plan) -> None:
    """Step 4: the SOC_PARTITIONS topics to N partitions, adding partitions, or where the broker
    cannot, deleting and creating them again with the configs the code gives them."""
    from kafka.admin import NewTopic

    if not p.grow:
        return
    if not p.recreate:
        admin.create_partitions({name: p.partitions for name in p.grow})
    else:
        specs = {s.name: s for s in topics.topic_specs() if s.name in p.grow}
        admin.delete_topics(p.grow)
        _wait(lambda: not set(p.grow) & set(partition_counts(admin)), "the old topics to go")
        for name in p.grow:
            admin.create_topics([NewTopic(name, p.partitions, settings.replication_factor,
                                          topic_configs=durable(specs[name].configs, settings.replication_factor))])
    _wait(lambda: all(partition_counts(admin).get(n) == p.partitions for n in p.grow), f"{p.partitions} partitions")


def write_back(settings: Settings, p: Plan, kept: dict) -> int:
    """Step 5: the kept records, in their order within each old partition, to the partition the
    producer's partitioner gives their key under N (a record without a key keeps its partition).
    Timestamps are kept: the pipeline stamps received_at from them. Written twice by a run that is
    run again, they are replays, which the ticket step applies once (design: exact replays)."""
    security = settings.kafka_client_kwargs()
    count = 0
    for topic, (_, records) in kept.items():
        rows = [(r.partition if r.key is None else input_partition(r.key, p.partitions), r.key, r.value, r.timestamp)
                for r in sorted(records, key=lambda r: (r.partition, r.offset))]
        produce(settings.bootstrap_servers, security, topic, rows)
        count += len(rows)
    return count


def _wait(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RepartitionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def carry_offsets(settings: Settings, p: Plan, kept: dict) -> dict:
    """Step 6: the new group starts where the old one stopped. A grown topic keeps its records and
    offsets, except that on the table's inputs the group starts at the old end, past the tail that
    step 5 wrote again after it; its new partitions start at the beginning. A recreated topic starts
    at the beginning (all of it is the kept tail), except soc.tickets, whose copy the old group had read."""
    from kafka import TopicPartition

    security = settings.kafka_client_kwargs()
    bootstrap = settings.bootstrap_servers
    if not p.recreate:
        offsets = {tp: o for tp, o in p.old_offsets.items() if tp.topic not in kept}
        for topic, (ends, _) in kept.items():
            offsets.update({TopicPartition(topic, partition): end for partition, end in ends.items()})
    else:
        offsets = {tp: o for tp, o in p.old_offsets.items() if tp.topic not in p.keyed}
        if topics.TICKETS in kept and any(tp.topic == topics.TICKETS for tp in p.old_offsets):
            ends = end_offsets(bootstrap, security, {topics.TICKETS: p.partitions})
            offsets.update({TopicPartition(tp.topic, tp.partition): end for tp, end in ends.items()})
    commit(bootstrap, security, p.new_app_id, offsets)
    return offsets


def run(partitions: int, new_app_id: str, old_app_id: str | None = None, settings: Settings | None = None) -> int:
    settings = settings or Settings()
    old_app_id = old_app_id or settings.app_id
    admin = connect(settings.bootstrap_servers, security=settings.kafka_client_kwargs())
    try:
        try:
            p = plan(settings, admin, partitions, new_app_id, old_app_id)
            print(f"{old_app_id} -> {new_app_id}: {p.current} -> {partitions} partitions "
                  f"({'recreating the topics: this broker has no CreatePartitions' if p.recreate else 'adding partitions'})",
                  flush=True)
            keys = write_changelog(settings, p)
            print(f"wrote {keys} keys to {topics.changelog_topic(new_app_id, TABLE)} ({partitions} partitions)", flush=True)
            kept = keep(settings, p)
            resize_topics(settings, admin, p)
            print(f"{', '.join(p.keyed)}: {partitions} partitions", flush=True)
            moved = write_back(settings, p, kept)
            print(f"wrote back {moved} records ({', '.join(f'{t} {len(r)}' for t, (_, r) in kept.items())})", flush=True)
            offsets = carry_offsets(settings, p, kept)
            print(f"consumer group {new_app_id}: {len(offsets)} committed offsets carried over", flush=True)
            for topic in kept:
                backup_path(settings, p, topic).unlink(missing_ok=True)
        except RepartitionError as exc:
            print(f"soc repartition: {exc}", file=sys.stderr)
            return 2
    finally:
        admin.close()
    print(f"done. Start the workers with SOC_APP_ID={new_app_id} SOC_PARTITIONS={partitions}; "
          f"then delete the consumer group {old_app_id} and {topics.changelog_topic(old_app_id, TABLE)}.")
    return 0
