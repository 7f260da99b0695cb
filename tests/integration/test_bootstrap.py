"""The worker owns its start: on a real Tansu broker, `soc worker` creates the topics
it needs with the configured partitions and configs, and refuses to start on a topic with another count."""
from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic

from streams import topics
from streams.ops.bootstrap import connect, ensure_topics
from streams.ops.devstack import Stack, ensure_redis, existing_topics, free_port, soc_command, start_broker
from tests.support import CONFIG, Worker, marker, wait_ready

pytestmark = pytest.mark.integration

# Neither Faust's nor the broker's usual default, so a topic someone else created stands out.
PARTITIONS = 6


@contextmanager
def bare_stack(log_dir: Path, with_redis: bool = True) -> Iterator[Stack]:
    """A Tansu broker with no topics at all (Stack.start would create them) and, if asked, Redis."""
    stack = Stack(log_dir=log_dir, partitions=PARTITIONS, app_id=f"soc-boot-{marker()}",
                  redis_prefix=f"soc-test-{marker()}",
                  extra_env={d.token_env: f"test-{marker()}" for d in CONFIG.district.departments.values()})
    log_dir.mkdir(parents=True, exist_ok=True)
    try:
        stack.broker, stack.bootstrap = start_broker(log_dir)
        stack.processes.append(stack.broker)
        if with_redis:
            stack.redis, stack.redis_url = ensure_redis(log_dir)
            if stack.redis:
                stack.processes.append(stack.redis)
        else:
            stack.redis_url = f"redis://127.0.0.1:{free_port()}/0"  # nothing there: the worker must not get that far
        yield stack
    finally:
        if with_redis and stack.redis_url:
            try:
                client = redis.Redis.from_url(stack.redis_url)
                for key in client.scan_iter(f"{stack.redis_prefix}:*"):
                    client.delete(key)
                client.close()
            except redis.RedisError:
                pass
        stack.stop()


def expected(app_id: str) -> dict[str, tuple[int, bool]]:
    """Topic name -> (partitions, compacted), as the worker must leave them."""
    return {spec.name: (spec.partitions or PARTITIONS, spec.configs.get("cleanup.policy") == "compact")
            for spec in topics.topic_specs(app_id)}


def cleanup_policies(bootstrap: str, names: list[str]) -> dict[str, str | None]:
    admin = connect(bootstrap, timeout=10)
    try:
        # Tansu 0.6 answers DescribeConfigs with the configs a topic was created with (reported with source
        # DEFAULT_CONFIG, so kafka-python's default "modified" filter drops them: ask for all) and reports
        # nothing for a topic created without any; production Kafka reports cleanup.policy=delete there.
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name) for name in names],
                                           config_filter="all")["topic"]
    finally:
        admin.close()
    return {name: (described.get(name, {}).get("cleanup.policy") or {}).get("value") for name in names}


def run_soc(stack: Stack, *argv: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([*soc_command(), *argv], env=stack.env(), capture_output=True, text=True, timeout=timeout)


def test_worker_on_a_broker_without_topics_creates_them_and_becomes_ready(tmp_path):
    with bare_stack(tmp_path / "stack") as stack:
        assert existing_topics(stack.bootstrap) == {}
        process, port = stack.start_worker()
        worker = Worker(process, port)
        wait_ready(worker)  # fails with the worker's log if it exits first (e.g. PartitionsMismatch)

        want = expected(stack.app_id)
        present = existing_topics(stack.bootstrap)
        assert {name: present.get(name) for name in want} == {name: count for name, (count, _) in want.items()}
        assert present[topics.INCIDENTS] == present[topics.TICKET_EVENTS] == PARTITIONS
        policies = cleanup_policies(stack.bootstrap, list(want))
        assert {name for name, policy in policies.items() if policy == "compact"} == \
            {name for name, (_, compacted) in want.items() if compacted}
        assert "created topics:" in process.log_path.read_text(errors="replace")
        assert process.popen.poll() is None, worker.log_tail()


def test_worker_exits_2_when_incidents_has_another_partition_count(tmp_path):
    with bare_stack(tmp_path / "stack", with_redis=False) as stack:
        admin = connect(stack.bootstrap, timeout=10)
        try:
            admin.create_topics([NewTopic(topics.INCIDENTS, 3, 1)], timeout_ms=10_000)
        finally:
            admin.close()

        result = run_soc(stack, "worker")

        assert result.returncode == 2, result.stderr
        assert result.stderr.splitlines() == [f"topic soc.incidents has 3 partitions, expected {PARTITIONS} (SOC_PARTITIONS)"]
        # Checked before anything is created: a misconfigured worker leaves the broker as it found it.
        assert existing_topics(stack.bootstrap) == {topics.INCIDENTS: 3}
        # The operators' command says the same.
        again = run_soc(stack, "topics")
        assert (again.returncode, again.stderr) == (2, result.stderr)


def test_soc_topics_creates_what_the_worker_needs_and_a_second_run_nothing(tmp_path):
    with bare_stack(tmp_path / "stack", with_redis=False) as stack:
        first = run_soc(stack, "topics")
        assert first.returncode == 0, first.stderr
        want = expected(stack.app_id)
        assert existing_topics(stack.bootstrap) == {name: count for name, (count, _) in want.items()}
        second = run_soc(stack, "topics")
        assert (second.returncode, second.stdout.strip()) == (0, "topics ready"), second.stderr


def test_two_workers_creating_the_same_topics_at_once_both_succeed(tmp_path):
    with bare_stack(tmp_path / "stack", with_redis=False) as stack:
        specs = topics.topic_specs(stack.app_id)
        start = threading.Barrier(2)

        def one_worker() -> list[str]:
            start.wait(30)
            return ensure_topics([stack.bootstrap], PARTITIONS, 1, specs, timeout=30)

        with ThreadPoolExecutor(2) as pool:
            a, b = (f.result(60) for f in [pool.submit(one_worker), pool.submit(one_worker)])
        # Each topic was created once, by one of them; the other found it and checked it. (One thread usually
        # gets every TopicAlreadyExistsError here, but the timing is the broker's: the unit tier covers that
        # path deterministically, test_a_topic_created_meanwhile_by_another_worker_is_checked_again.)
        assert sorted(a + b) == sorted(spec.name for spec in specs)
        assert existing_topics(stack.bootstrap) == {n: c for n, (c, _) in expected(stack.app_id).items()}
        assert ensure_topics([stack.bootstrap], PARTITIONS, 1, specs, timeout=30) == []


def test_ensure_topics_waits_for_a_broker_that_starts_later(tmp_path):
    port = free_port()
    log_dir = tmp_path / "late"
    log_dir.mkdir()
    broker = None
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(ensure_topics, f"127.0.0.1:{port}", PARTITIONS, 1, topics.topic_specs("soc-late"), 60)
        try:
            assert not pending.done()
            broker, bootstrap = start_broker(log_dir, port=port)
            created = pending.result(90)
            # Every topic is there once it returns. (The names it returns are only those whose creation it saw
            # answered: on a loaded machine a creation can time out after the broker made the topic.)
            wanted = {spec.name: spec.partitions or PARTITIONS for spec in topics.topic_specs("soc-late")}
            present = existing_topics(bootstrap)
            assert {name: present.get(name) for name in wanted} == wanted
        finally:
            if broker:
                broker.stop()
    assert set(created) <= set(wanted) and created
