"""`soc repartition`: change the partition count of the keyed topics without losing the ticket table.

Why a command: dedup_key_to_tickets is co-partitioned with soc.incidents and soc.ticket-events. Faust
writes a key's changelog record to the partition of the input record being processed (tables.base:
`event.message.partition`), and that input partition is aiokafka's DefaultPartitioner (murmur2 of the
key bytes, as Java's) over the topic's partition count. Kafka does not move existing records when a
topic grows, so after `--alter` every key whose hash lands elsewhere is recovered into a partition
its inputs no longer reach, and the memory store drops it when that partition is not assigned.

So, with every worker stopped and the table's inputs fully consumed, this command:
1. reads the latest value of every key from the old app id's changelog;
2. writes each one, bytes unchanged, to a new changelog named for the new app id with N partitions,
   at the partition the producer's partitioner gives its input key under N, and reads it back;
3. grows the topics whose count is SOC_PARTITIONS to N (CreatePartitions), or, on a broker without
   CreatePartitions (the embedded Tansu), deletes and recreates them, copying soc.tickets;
4. gives the new consumer group (the new app id) the old group's committed offsets, so the new
   workers neither replay the raw topics nor lose what arrived while they were stopped.
The old app id's changelog and group are left as they were: until step 3 nothing is lost by going back.
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
    input key the dedup key's UTF-8 (streams/topology/app.py). Hashing the changelog bytes as they
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
    # The table's inputs always, and on a recreate everything recreated: what the old group has not
    # read yet would be lost with the old partitions.
    must_drain = keyed if recreate else list(TABLE_INPUTS)
    ends = end_offsets(bootstrap, security, {name: counts[name] for name in must_drain})
    # soc.tickets is copied on a recreate: only its reader, the notifier (if the old group ran one), must be done.
    behind = [f"{tp.topic}[{tp.partition}] {old_offsets.get(tp, 0)}/{end}" for tp, end in sorted(ends.items())
              if end > old_offsets.get(tp, 0) and (tp.topic != topics.TICKETS or tp in old_offsets)]
    if behind:
        what = "stop the sources too: this broker cannot add partitions, so the topics are recreated" if recreate \
            else "let the workers consume them before stopping"
        raise RepartitionError(f"not fully consumed by {old_app_id} (committed/end): {', '.join(behind)}; {what}")
    return Plan(old_app_id, new_app_id, partitions, current, keyed, grow, recreate, old_offsets)


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
            [(placed[key], key, r.value, r.timestamp) for key, r in state.items()])
    moved, _ = read_topic(bootstrap, security, new_changelog)
    got = {key: (r.partition, r.value) for key, r in latest(moved).items()}
    want = {key: (placed[key], r.value) for key, r in state.items()}
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


def resize_topics(settings: Settings, admin, p: Plan) -> None:
    """Step 3: the SOC_PARTITIONS topics to N partitions."""
    if not p.grow:
        return
    if not p.recreate:
        admin.create_partitions({name: p.partitions for name in p.grow})
        _wait(lambda: all(partition_counts(admin).get(n) == p.partitions for n in p.grow), "the new partitions")
        return
    from kafka.admin import NewTopic

    security = settings.kafka_client_kwargs()
    bootstrap = settings.bootstrap_servers
    # soc.tickets is what `soc rebuild` reads: its latest version of each ticket is written again
    # (keyed by ticket id, default partitioner, as the workers write it), from a file kept until the
    # copy is back, so a run stopped between the delete and the copy loses nothing when run again.
    # The other topics were fully consumed (plan()): they come back empty.
    backup = Path(settings.data_dir) / f"repartition-{p.new_app_id}-{topics.TICKETS}.jsonl"
    if topics.TICKETS in p.grow:
        tickets = list(latest(read_topic(bootstrap, security, topics.TICKETS)[0]).values())
        backup.parent.mkdir(parents=True, exist_ok=True)
        backup.write_text("".join(orjson.dumps([base64.b64encode(r.key).decode(), base64.b64encode(r.value).decode(),
                                                r.timestamp]).decode() + "\n" for r in tickets))
        print(f"{topics.TICKETS}: {len(tickets)} tickets kept in {backup} until copied back", flush=True)
    elif backup.exists():
        tickets = [Record(0, 0, base64.b64decode(k), base64.b64decode(v), ts)
                   for k, v, ts in map(orjson.loads, backup.read_text().splitlines())]
    else:
        tickets = []
    specs = {s.name: s for s in topics.topic_specs() if s.name in p.grow}
    admin.delete_topics(p.grow)
    _wait(lambda: not set(p.grow) & set(partition_counts(admin)), "the old topics to go")
    for name in p.grow:
        admin.create_topics([NewTopic(name, p.partitions, settings.replication_factor,
                                      topic_configs=durable(specs[name].configs, settings.replication_factor))])
    _wait(lambda: all(partition_counts(admin).get(n) == p.partitions for n in p.grow), "the new topics")
    produce(bootstrap, security, topics.TICKETS,
            [(input_partition(r.key, p.partitions), r.key, r.value, r.timestamp) for r in tickets])
    backup.unlink(missing_ok=True)


def _wait(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RepartitionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def carry_offsets(settings: Settings, p: Plan) -> dict:
    """Step 4: the new group starts where the old one stopped. Grown topics keep their records, so
    the old offsets hold; new partitions have none and start at the beginning (they are empty).
    Recreated topics start at the beginning, except soc.tickets whose copy the old group had read."""
    from kafka import TopicPartition

    security = settings.kafka_client_kwargs()
    bootstrap = settings.bootstrap_servers
    if not p.recreate:
        offsets = dict(p.old_offsets)
    else:
        offsets = {tp: o for tp, o in p.old_offsets.items() if tp.topic not in p.keyed}
        if any(tp.topic == topics.TICKETS for tp in p.old_offsets):
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
            resize_topics(settings, admin, p)
            print(f"{', '.join(p.keyed)}: {partitions} partitions", flush=True)
            offsets = carry_offsets(settings, p)
            print(f"consumer group {new_app_id}: {len(offsets)} committed offsets carried over", flush=True)
        except RepartitionError as exc:
            print(f"soc repartition: {exc}", file=sys.stderr)
            return 2
    finally:
        admin.close()
    print(f"done. Start the workers with SOC_APP_ID={new_app_id} SOC_PARTITIONS={partitions}; "
          f"then delete the consumer group {old_app_id} and {topics.changelog_topic(old_app_id, TABLE)}.")
    return 0
