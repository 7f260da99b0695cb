"""Table recovery on a real Tansu broker reads the whole changelog, its last batch included.

Tansu 0.6 answers ListOffsets (latest) with its last batch's base offset + 1, not the log end, and Faust's
recovery stopped at that end: a restarted worker lost every key written after the first record of the
changelog's last batch, and their next report opened a second ticket (one way the two-kill storm got them).
faust_compat.recover_to_the_fetched_end reads on to the end the fetch responses report."""
from __future__ import annotations

from pathlib import Path

import pytest
import redis
from kafka import KafkaConsumer, TopicPartition

from streams import topics
from streams.ops import repartition
from streams.ops.devstack import Stack
from tests.integration.payloads import Builder
from tests.integration.test_repartition import refs_in, send, start
from tests.support import CONFIG, poll

pytestmark = pytest.mark.integration

CATEGORIES = ("garbage_overflow", "illegal_vending", "illegal_advertising", "noise_complaint", "damaged_facility",
              "road_damage", "manhole_cover_missing")
COMMUNITIES = ("liyuan", "wanghai", "haibin")


def listed_and_true_ends(bootstrap: str, topic: str) -> tuple[int, int]:
    """The changelog's end as ListOffsets reports it, and as far as a fetch reads (one partition)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    try:
        listed = consumer.end_offsets([TopicPartition(topic, 0)])[TopicPartition(topic, 0)]
    finally:
        consumer.close()
    records, _ = repartition.read_topic(bootstrap, {}, topic)
    return listed, max((r.offset for r in records), default=-1) + 1


def test_a_restarted_worker_recovers_every_key_of_a_batched_changelog(tmp_path: Path, unique):
    build = Builder(CONFIG, unique)
    app_id = f"soc-rec-{unique}"
    # One partition: every table key in one changelog partition, written in a few batches.
    tokens = {CONFIG.district.departments[d].token_env: f"test-{d}-{unique}" for d in CONFIG.district.departments}
    stack = Stack.start(tmp_path, partitions=1, app_id=app_id, redis_prefix=f"soc-test-{unique}", extra_env=tokens)
    client = redis.Redis.from_url(stack.redis_url)
    try:
        worker = start(stack)
        reports = [build.city(community, category=category) for category in CATEGORIES for community in COMMUNITIES]
        send(stack, reports)  # one flush: the ticket step decides them in a batch, its writes share batches
        poll(lambda: len(refs_in(client, stack, reports)) == len(reports), 60, f"{len(reports)} tickets")
        worker.process.stop()
        stack.processes.remove(worker.process)

        listed, true_end = listed_and_true_ends(stack.bootstrap, topics.changelog_topic(app_id, repartition.TABLE))
        # The case in question: the changelog's last batch holds several records, so the listed end falls short.
        assert listed < true_end, (listed, true_end)

        start(stack)
        # A later report of each problem: one more occurrence of its ticket, had its state been recovered.
        again = [dict(r, case_no=build.next_id("12345"), reported_at=build.at(minutes=10)) for r in reports]
        send(stack, again)

        def settled():
            old, opened = refs_in(client, stack, reports), refs_in(client, stack, again)
            merged = [t for t in old.values() if t.occurrences == 2]
            return (merged, opened) if len(merged) + len(opened) == len(again) else None

        merged, opened = poll(settled, 60, "every later report to merge or open a ticket")
        assert not opened, (f"{len(opened)} of {len(again)} later reports opened a new ticket: recovery stopped "
                            f"at the listed end {listed} of {true_end}")
    finally:
        for key in client.scan_iter(f"{stack.redis_prefix}:*"):
            client.delete(key)
        client.close()
        stack.stop()
