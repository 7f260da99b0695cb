"""Changing the partition count, followed as docs/operations/scaling.md tells the operator,
on a real Tansu broker and Redis: tickets made with 2 partitions, `soc repartition` to 5, workers
started with the new app id, and every ticket still in the table: a new report of an old ticket's
problem merges into it, and a command on an old ticket is applied.

Tansu has no CreatePartitions, so here the command recreates the topics (copying soc.tickets);
on Kafka it adds partitions instead, a path that cannot run here."""
from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
import redis

from schemas.enums import Category, TicketStatus
from streams import topics
from streams.ops import repartition
from streams.ops.devstack import Stack, existing_topics, soc_command
from tests.integration.payloads import Builder
from tests.support import CONFIG, Worker, after_photo_form, marker, poll, wait_ready

pytestmark = pytest.mark.integration

OLD_PARTITIONS, NEW_PARTITIONS = 2, 5
CATEGORIES = ("garbage_overflow", "illegal_vending", "illegal_advertising", "noise_complaint", "damaged_facility",
              "road_damage", "manhole_cover_missing")
COMMUNITIES = ("liyuan", "wanghai", "haibin")


def test_repartition_keeps_every_ticket_in_the_table(tmp_path: Path):
    unique = marker()
    build = Builder(CONFIG, unique)
    tokens = {d: f"test-{d}-{marker()}" for d in CONFIG.district.departments}
    old_app, new_app = f"soc-rp-{unique}", f"soc-rp-{unique}-p{NEW_PARTITIONS}"
    stack = Stack.start(tmp_path, partitions=OLD_PARTITIONS, app_id=old_app, redis_prefix=f"soc-test-{unique}",
                        extra_env={CONFIG.district.departments[d].token_env: t for d, t in tokens.items()})
    client = redis.Redis.from_url(stack.redis_url)
    settings = settings_of(stack)
    try:
        worker = start(stack)
        reports = [build.city(community, category=category) for category in CATEGORIES for community in COMMUNITIES]
        send(stack, reports)
        before = poll(lambda: tickets_of(client, stack, reports), 60, f"{len(reports)} tickets")
        assert sorted(t.occurrences for t in before.values()) == [1] * len(reports)
        accepted = next(t for t in before.values() if t.category is Category.city_road_damage)
        code, body = api(worker, tokens[accepted.department], f"/api/tickets/{accepted.ticket_id}/accept", {})
        assert code == 200 and body["status"] == TicketStatus.accepted.value, body
        # The operator's precondition: the table's inputs fully consumed, then the workers stopped.
        poll(lambda: drained(settings), 60, "the old group to commit the end of soc.incidents and soc.ticket-events")
        worker.process.stop()
        stack.processes.remove(worker.process)
        # An incident the parse hop wrote that the ticket step had not decided when the workers
        # stopped: the command moves it to its key's new partition, after the state.
        undecided = later_incident(stack, accepted.dedup_key)

        started = time.monotonic()
        done = subprocess.run([*soc_command(), "repartition", "--partitions", str(NEW_PARTITIONS), "--to-app-id", new_app],
                              env=stack.env(), capture_output=True, text=True, timeout=120)
        print(f"soc repartition: {time.monotonic() - started:.1f}s\n{done.stdout}")  # the guide's measured figure (-s)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "no CreatePartitions" in done.stdout  # Tansu 0.6: the recreate path
        assert f"{topics.INCIDENTS} 1" in done.stdout, done.stdout  # the undecided incident, kept and written back

        # Every key is where a worker with 5 partitions looks for it, and some did move.
        moved, _ = repartition.read_topic(stack.bootstrap, {}, topics.changelog_topic(new_app, repartition.TABLE))
        layout = {repartition.table_input_key(r.key): r.partition for r in repartition.latest(moved).values()}
        keys = {t.dedup_key.encode() for t in before.values()}
        assert keys <= set(layout)
        assert all(layout[k] == repartition.input_partition(k, NEW_PARTITIONS) for k in keys)
        assert any(repartition.input_partition(k, OLD_PARTITIONS) != layout[k] for k in keys)

        stack.app_id, stack.partitions = new_app, NEW_PARTITIONS
        worker = start(stack)
        # A later report of each old problem: one more occurrence of its ticket, not a new ticket.
        again = [dict(r, case_no=build.next_id("12345"), reported_at=build.at(minutes=10)) for r in reports]
        send(stack, again)

        def settled():
            # Each later report either merged (its old ticket counts 2) or, had the state been lost, opened one.
            old, opened = refs_in(client, stack, reports), refs_in(client, stack, again)
            merged = [t for t in old.values() if t.occurrences == 2 + (t.ticket_id == accepted.ticket_id)]
            return (old, opened) if len(merged) + len(opened) == len(again) else None

        after, opened = poll(settled, 60, "every later report to merge or open a ticket")
        assert not opened, f"{len(opened)} of {len(again)} later reports opened a new ticket: their state was lost"
        assert set(after) == set(before)
        # Road damage is resolved with a photo after the work (routing.yaml).
        code, body = api(worker, tokens[accepted.department], f"/api/tickets/{accepted.ticket_id}/evidence",
                         *after_photo_form())
        assert code in (201, 202), body
        code, body = api(worker, tokens[accepted.department], f"/api/tickets/{accepted.ticket_id}/resolve",
                         {"resolution": "已修补"})
        assert code == 200 and body["status"] == TicketStatus.resolved.value, body

        # soc.tickets survived the recreate: Redis rebuilt from it has every ticket, as it last was.
        rebuilt = subprocess.run([*soc_command(), "rebuild"], env=stack.env(), capture_output=True, text=True, timeout=120)
        assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
        final = poll(lambda: tickets_of(client, stack, reports), 30, "the rebuilt tickets")
        assert {i: t.occurrences for i, t in final.items()} == {i: 2 + (i == accepted.ticket_id) for i in before}
        assert undecided["incident_id"] in final[accepted.ticket_id].model_dump_json()
        assert final[accepted.ticket_id].status is TicketStatus.resolved
    finally:
        for key in client.scan_iter(f"{stack.redis_prefix}:*"):
            client.delete(key)
        client.close()
        stack.stop()


def later_incident(stack: Stack, dedup_key: str) -> dict:
    """A copy of the key's incident on soc.incidents, as a second report ten minutes later, written as
    the parse hop writes it (keyed by the dedup key, the producer's default partitioner)."""
    import json
    from datetime import datetime, timedelta

    from kafka import KafkaConsumer, KafkaProducer

    consumer = KafkaConsumer(topics.INCIDENTS, bootstrap_servers=stack.bootstrap, auto_offset_reset="earliest",
                             enable_auto_commit=False, group_id=None, consumer_timeout_ms=3000)
    try:
        first = next(json.loads(m.value) for m in consumer if m.key == dedup_key.encode())
    finally:
        consumer.close()
    later = lambda t: (datetime.fromisoformat(t) + timedelta(minutes=10)).isoformat()  # noqa: E731
    incident = dict(first, incident_id=f"{first['incident_id']}-later", source_ref=f"{first['source_ref']}-later",
                    observed_at=later(first["observed_at"]), received_at=later(first["received_at"]))
    producer = KafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    try:
        producer.send(topics.INCIDENTS, key=dedup_key.encode(), value=json.dumps(incident, ensure_ascii=False).encode()
                      ).get(timeout=30)
    finally:
        producer.close()
    return incident


def settings_of(stack: Stack):
    from streams.settings import Settings

    return Settings(kafka_brokers=stack.bootstrap, app_id=stack.app_id)


def start(stack: Stack) -> Worker:
    process, port = stack.start_worker(f"worker-{stack.app_id}", SOC_GAUGES_INTERVAL_S="1")
    worker = Worker(process, port)
    wait_ready(worker)
    return worker


def send(stack: Stack, payloads: list[dict]) -> None:
    import json

    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=stack.bootstrap, acks="all")
    try:
        for payload in payloads:
            producer.send(topics.RAW_TOPICS["city"], value=json.dumps(payload, ensure_ascii=False).encode())
        producer.flush()
    finally:
        producer.close()


def tickets_of(client: redis.Redis, stack: Stack, reports: list[dict]) -> dict | None:
    """The tickets the reports opened, by id, once there is one per report (None before)."""
    found = refs_in(client, stack, reports)
    return found if len(found) == len(reports) else None


def refs_in(client: redis.Redis, stack: Stack, reports: list[dict]) -> dict:
    """The tickets in Redis whose source report is one of `reports`, by id."""
    from schemas.records import Ticket

    refs = {r["case_no"] for r in reports}
    found = {}
    for ticket_id in client.zrange(f"{stack.redis_prefix}:tickets", 0, -1):
        raw = client.hget(f"{stack.redis_prefix}:ticket:{ticket_id.decode()}", "json")
        if raw is not None:
            ticket = Ticket.model_validate_json(raw)
            if ticket.source_ref in refs:
                found[ticket.ticket_id] = ticket
    return found


def drained(settings) -> bool:
    counts = {name: OLD_PARTITIONS for name in repartition.TABLE_INPUTS}
    done = repartition.committed(settings.bootstrap_servers, {}, settings.app_id, counts)
    ends = repartition.end_offsets(settings.bootstrap_servers, {}, counts)
    return all(done.get(tp, 0) >= end for tp, end in ends.items())


def api(worker: Worker, token: str, path: str, body: dict | bytes,
        content_type: str = "application/json") -> tuple[int, dict]:
    import json
    import urllib.error
    import urllib.request

    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(worker.url + path, data=data, method="POST",
                                     headers={"Authorization": f"Bearer {token}", "Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def test_repartition_refuses_what_it_cannot_do_safely_before_changing_anything(tmp_path: Path):
    """The same app id (its changelog would be written over), fewer partitions (Kafka cannot remove
    any), and a new app id workers have already run with (its table may hold newer state)."""
    from kafka import TopicPartition

    unique = marker()
    stack = Stack.start(tmp_path, partitions=OLD_PARTITIONS, app_id=f"soc-rp-{unique}")
    try:
        created = subprocess.run([*soc_command(), "topics"], env=stack.env(), capture_output=True, text=True, timeout=60)
        assert created.returncode == 0, created.stderr  # the old app id's changelog, as a worker would leave it
        used = f"soc-rp-{unique}-used"
        repartition.commit(stack.bootstrap, {}, used, {TopicPartition(topics.INCIDENTS, 0): 0})
        before = existing_topics(stack.bootstrap)

        def refused(partitions: int, to_app_id: str) -> str:
            done = subprocess.run([*soc_command(), "repartition", "--partitions", str(partitions), "--to-app-id", to_app_id],
                                  env=stack.env(), capture_output=True, text=True, timeout=120)
            assert done.returncode == 2, done.stdout + done.stderr
            assert existing_topics(stack.bootstrap) == before  # no new changelog, no topic resized
            return done.stderr

        assert "must differ" in refused(NEW_PARTITIONS, stack.app_id)
        assert "can only add partitions" in refused(OLD_PARTITIONS, f"soc-rp-{unique}-p{OLD_PARTITIONS}")
        assert "already has committed offsets" in refused(NEW_PARTITIONS, used)
    finally:
        stack.stop()
