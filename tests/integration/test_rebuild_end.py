"""`soc rebuild` reads soc.tickets to its end on a real Tansu broker, its last batch included.

Tansu 0.6 answers ListOffsets (latest) with the last batch's base offset + 1: a poll (500 records at
most) that ended inside that batch took the partition as read, and the rebuild lost the batch's tail
(tickets in Redis missing from the rebuilt projection, the redis-outage scenario's failure)."""
from __future__ import annotations

from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import NewTopic

from streams.ops import rebuild
from streams.ops.devstack import start_broker

pytestmark = pytest.mark.integration


def test_rebuild_reads_a_topic_to_its_end_when_a_poll_ends_inside_the_last_batch(tmp_path: Path):
    broker, bootstrap = start_broker(tmp_path)
    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        admin.create_topics([NewTopic("rebuild-end", 1, 1)])
        admin.close()
        single = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, batch_size=1)  # one record per batch
        for n in range(450):
            single.send("rebuild-end", value=b"%d" % n)
        single.flush()
        single.close()
        batched = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=200, batch_size=1 << 20)
        for n in range(450, 550):  # one batch from offset 450: the first poll ends inside it, at 500
            batched.send("rebuild-end", value=b"%d" % n)
        batched.flush()
        batched.close()
        assert sorted(int(v) for v in rebuild.values("rebuild-end", [bootstrap])) == list(range(550))
    finally:
        broker.stop()
