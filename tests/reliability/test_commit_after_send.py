"""Commit only what was sent: whenever a worker dies (kill -9), every input its consumer group has
committed has all its outputs on the broker, table changelog writes included, even while the
producer is slow and the worker's sends queue up behind it."""
from __future__ import annotations

import json
import os
import random
import threading
import time
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from streams.ops.repartition import end_offsets
from tests.support import CONFIG, Pipeline, poll, running_pipeline, wait_ready
from tests.integration.payloads import Builder

pytestmark = [pytest.mark.integration, pytest.mark.faults]

KILLS = 20
# One send in ten stalls for 0.3 s: longer than the 0.1 s Faust's producer buffer waits when it is flushed
# before a commit, and often enough that outputs queue up behind the producer at the offered rate.
SEND_STALLS = "0.1:0.3"
# Readings per second, each from a station of its own (a ticket each). Behind those stalls the ticket step
# spends about 0.15 s a reading (some five sends, a tenth of them 0.3 s late): at 10 a second its backlog grew through the test, and a worker restarted late
# in it needed minutes to finish its first batch.
RATE = 5
SLOW_SENDS = Path(__file__).with_name("slow_sends")


@pytest.fixture(scope="module")
def slow(tmp_path_factory):
    path = os.pathsep.join(p for p in (str(SLOW_SENDS), os.environ.get("PYTHONPATH")) if p)
    with running_pipeline(Path(tmp_path_factory.mktemp("commit-after-send")), private_redis=True,
                          SOC_SESSION_TIMEOUT_S="6", SOC_HEARTBEAT_INTERVAL_S="2",
                          # No escalation ladder: by minute 8 every test ticket was due a reminder, and the
                          # reminders outgrew the readings (they are covered in tests/integration/test_escalation.py).
                          SOC_ESCALATION_INTERVAL_S="3600",
                          PYTHONPATH=path, SOC_TEST_SEND_STALLS=SEND_STALLS) as running:
        yield running


class Log:
    """A topic read from the start, and on each call read on to its current end."""

    def __init__(self, bootstrap: str, topic: str):
        self.bootstrap, self.topic = bootstrap, topic
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
        self.partitions = [TopicPartition(topic, p) for p in sorted(self.consumer.partitions_for_topic(topic))]
        self.consumer.assign(self.partitions)
        self.consumer.seek_to_beginning(*self.partitions)
        self.records = []

    def read_to_end(self) -> list:
        # The true ends, not ListOffsets' (Tansu lists the last batch's base offset + 1): read to those, a
        # poll of 500 records that stopped inside a partition's last batch ended the reading with the rest
        # of the batch unread, and a changelog record the broker had acknowledged was reported missing.
        ends = end_offsets(self.bootstrap, {}, {self.topic: len(self.partitions)})
        deadline = time.monotonic() + 60
        while any(self.consumer.position(tp) < ends[tp] for tp in self.partitions):
            assert time.monotonic() < deadline, f"{self.partitions[0].topic} not read to its end in 60 s"
            self.records.extend(r for batch in self.consumer.poll(200).values() for r in batch)
        return self.records

    def close(self) -> None:
        self.consumer.close()


def committed(admin: KafkaAdminClient, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offsets on the topic, as the broker has them (Tansu lists them by partition only)."""
    wanted = [TopicPartition(topic, p) for p in range(partitions)]
    return {tp.partition: meta.offset for tp, meta in admin.list_group_offsets({group: wanted})[group].items()
            if meta.offset >= 0}


def below(records: list, offsets: dict[int, int]) -> list:
    return [r for r in records if r.offset < offsets.get(r.partition, 0)]


def missing_outputs(pipeline: Pipeline, admin: KafkaAdminClient, logs: dict[str, Log],
                    prefix: str) -> tuple[list[str], int, int]:
    """What committed inputs of this test lack on the broker; how many committed readings and incidents there were."""
    group, partitions = pipeline.stack.app_id, pipeline.stack.partitions
    raw, incidents, tickets, changelog = (logs[name].read_to_end()
                                          for name in ("raw", "incidents", "tickets", "changelog"))
    missing = []
    # Hop 1: a committed reading has its incident on soc.incidents.
    incidents_of: dict[str, list[str]] = {}  # dedup key -> its incidents' partition/offset
    for r in incidents:
        incidents_of.setdefault(json.loads(r.value)["dedup_key"], []).append(f"{r.partition}/{r.offset}")
    read = [r for r in below(raw, committed(admin, group, "soc.raw.flood", partitions))
            if json.loads(r.value)["station_id"].startswith(prefix)]
    for record in read:
        key = f"flood:flood_waterlogging:{json.loads(record.value)['station_id']}"
        if key not in incidents_of:
            missing.append(f"soc.raw.flood {record.partition}/{record.offset}: no incident for {key}")
    # Hop 2: a committed incident has its ticket on soc.tickets and the key's state on the changelog, on
    # the incident's partition, naming that ticket.
    ticket_of = {}
    for r in tickets:
        ticket = json.loads(r.value)
        ticket_of.setdefault(ticket["dedup_key"], ticket["ticket_id"])
    states = {}
    for r in changelog:
        states.setdefault((r.partition, json.loads(r.key)), []).append(r.value or b"")
    decided = [r for r in below(incidents, committed(admin, group, "soc.incidents", partitions))
               if json.loads(r.value)["dedup_key"].startswith(f"flood:flood_waterlogging:{prefix}")]
    for record in decided:
        key = json.loads(record.value)["dedup_key"]
        ticket_id = ticket_of.get(key)
        if ticket_id is None:
            missing.append(f"soc.incidents {record.partition}/{record.offset}: no ticket for {key}")
        elif not any(ticket_id.encode() in value for value in states.get((record.partition, key), [])):
            # What the changelog and soc.incidents hold of the key, to tell a record on another partition or
            # an earlier state from none at all.
            elsewhere = {p: [ticket_id.encode() in v for v in values] for (p, k), values in states.items() if k == key}
            missing.append(f"soc.incidents {record.partition}/{record.offset}: no changelog record of {key} "
                           f"naming {ticket_id} (the key's changelog records by partition, naming it or not: "
                           f"{elsewhere}; its incidents: {incidents_of[key]})")
    return missing, len(read), len(decided)


def test_every_committed_input_has_its_outputs_on_the_broker_after_each_of_twenty_kills(slow, unique):
    seed = random.randrange(1 << 32)
    print(f"kill moments from seed {seed}")
    moments = random.Random(seed)
    build = Builder(CONFIG, unique)
    prefix = f"WL-{unique}-"
    stop = threading.Event()

    def send_readings():
        started, n = time.monotonic(), 0
        while not stop.is_set():
            lat, lon = build.point("haibin")
            reading = {"station_id": f"{prefix}{n}", "kind": "waterlogging", "value": 40, "lat": lat, "lon": lon,
                       "observed_at": build.at(minutes=n / 60)}
            slow.producer.send("soc.raw.flood", json.dumps(reading).encode())
            n += 1
            time.sleep(max(0.0, started + n / RATE - time.monotonic()))
        slow.producer.flush()

    sender = threading.Thread(target=send_readings, daemon=True)
    sender.start()
    admin = KafkaAdminClient(bootstrap_servers=slow.stack.bootstrap)
    logs = {}
    try:
        before = 0
        for kill in range(KILLS):
            wait_ready(slow.worker)
            # Killed at a random moment once this worker has committed: before its first commit there is
            # nothing to check.
            poll(lambda: sum(committed(admin, slow.stack.app_id, "soc.incidents", slow.stack.partitions).values())
                 > before, 120, "the worker to commit its first incidents", 0.25)
            time.sleep(moments.uniform(0.0, 4.0))  # the moment is the point: no event to wait for
            slow.worker.process.kill()
            slow.worker.process.popen.wait()
            slow.stack.processes.remove(slow.worker.process)
            if not logs:
                logs = {"raw": Log(slow.stack.bootstrap, "soc.raw.flood"),
                        "incidents": Log(slow.stack.bootstrap, "soc.incidents"),
                        "tickets": Log(slow.stack.bootstrap, "soc.tickets"),
                        "changelog": Log(slow.stack.bootstrap, f"{slow.stack.app_id}-dedup_key_to_tickets-changelog")}
            missing, readings, incidents = missing_outputs(slow, admin, logs, prefix)
            before = sum(committed(admin, slow.stack.app_id, "soc.incidents", slow.stack.partitions).values())
            assert not missing, (f"after kill {kill + 1}, committed inputs without their outputs:\n"
                                 + "\n".join(missing[:40]))
            slow.worker.process, _ = slow.stack.start_worker(web_port=slow.worker.port)
    finally:
        stop.set()
        sender.join(30)
        admin.close()
        for log in logs.values():
            log.close()
    # Both hops had committed inputs to check by the last kill: otherwise the test proved nothing.
    assert readings and incidents
    print(f"{KILLS} kills: every committed input had its outputs ({readings} readings and {incidents} incidents "
          "committed by the last)")
