"""The store through Redis Sentinel: a real redis-server and a real sentinel on loopback
ports the OS chose; the store finds the master by the sentinel, and after a failover finds the new one."""
from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest
import redis

from handlers.routing import route
from handlers.tickets import open_ticket
from schemas.enums import Category, Severity, Source
from schemas.records import Incident
from streams.store import TicketStore
from tests.support import CONFIG, poll

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def spawn(args: list[str], workdir) -> subprocess.Popen:
    return subprocess.Popen(args, cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture
def sentinel_group(tmp_path):
    binary = shutil.which("redis-server")
    assert binary, "redis-server missing (this machine has it; see /work/.library/env)"
    master_port, replica_port, sentinel_port = free_port(), free_port(), free_port()
    processes = [
        spawn([binary, "--port", str(master_port), "--bind", "127.0.0.1", "--save", ""], tmp_path),
        spawn([binary, "--port", str(replica_port), "--bind", "127.0.0.1", "--save", "",
               "--replicaof", "127.0.0.1", str(master_port)], tmp_path),
    ]
    config = tmp_path / "sentinel.conf"
    config.write_text(f"port {sentinel_port}\nbind 127.0.0.1\n"
                      f"sentinel monitor soc 127.0.0.1 {master_port} 1\n"
                      "sentinel down-after-milliseconds soc 1000\nsentinel failover-timeout soc 5000\n")
    processes.append(spawn([binary, str(config), "--sentinel"], tmp_path))
    try:
        for port in (master_port, replica_port, sentinel_port):
            poll(lambda: _pings(port), 20, f"redis on {port}")
        poll(lambda: redis.Redis(port=replica_port).info("replication").get("master_link_status") == "up", 20,
             "the replica in sync")
        # A sentinel learns of replicas from the master's INFO (every 10 s): a failover needs one known.
        poll(lambda: redis.Redis(port=sentinel_port).execute_command("SENTINEL", "REPLICAS", "soc"), 30,
             "the sentinel to know the replica", interval=0.5)
        yield {"sentinel": sentinel_port, "master": master_port, "replica": replica_port, "processes": processes}
    finally:
        for process in processes:
            process.kill()
            process.wait(10)


def _pings(port: int) -> bool:
    try:
        return redis.Redis(port=port, socket_timeout=1).ping()
    except redis.RedisError:
        return False


def a_ticket(n: int):
    at = datetime(2026, 12, 1, 10, tzinfo=timezone.utc) + timedelta(minutes=n)
    incident = Incident(incident_id=f"sentinel-{n}", source=Source.flood, category=Category.flood_waterlogging,
                        subcategory="x", severity=Severity.orange, title=f"t{n}", lat=22.53, lon=113.92,
                        community="haibin", observed_at=at, received_at=at, dedup_key=f"sentinel:{n}",
                        source_ref=f"ref-{n}")
    return open_ticket(CONFIG, incident, route(CONFIG, Category.flood_waterlogging, Severity.orange, "haibin"), at)


async def test_the_store_finds_the_master_through_the_sentinel_and_follows_a_failover(sentinel_group):
    url = f"redis+sentinel://127.0.0.1:{sentinel_group['sentinel']}/soc/0"
    store = TicketStore.from_url(url, "soc-sentinel-test", CONFIG)
    first = a_ticket(1)
    assert await store.save([(first, "dispatch")]) == [True]
    assert (await store.get(first.ticket_id)).ticket_id == first.ticket_id
    assert await store.redis.execute_command("WAIT", 1, 5000) == 1  # on the replica before the master dies
    # The master dies: the sentinel promotes the replica, and the same store writes there.
    sentinel_group["processes"][0].kill()
    deadline = time.monotonic() + 30
    second = a_ticket(2)
    while True:
        try:
            assert await store.save([(second, "dispatch")]) == [True]
            break
        except (redis.RedisError, OSError):
            assert time.monotonic() < deadline, "no failover within 30 s"
            await store.redis.connection_pool.disconnect()
            await asyncio.sleep(0.5)  # the sentinel is electing: try again shortly
    promoted = redis.Redis(port=sentinel_group["replica"])
    assert promoted.info("replication")["role"] == "master"
    assert promoted.hget(f"soc-sentinel-test:ticket:{second.ticket_id}", "json") is not None
    assert (await store.get(first.ticket_id)) is not None  # replicated before the failover
    await store.redis.aclose()
