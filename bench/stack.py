"""A phase's stack (broker, Redis, workers) and the drain of a backlog through it: when the workers are
ready, when they are done (their /metrics), what they cost (CPU), optionally py-spy on each."""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import redis
import redis.asyncio as aioredis

from bench.board import stream_ms
from bench.machine import proc_cpu_seconds
from bench.options import REPO, Options
from bench.workload import district_config
from schemas.accounts import UserRole
from streams.accounts import AccountStore
from streams.ops.devstack import Process, Stack, http_ok

COUNTERS = ("soc_events_total", "soc_incidents_total", "soc_pipeline_latency_seconds_count",
            "soc_events_rejected_total", "soc_duplicates_total", "soc_tickets_opened_total")


def http_get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


# No soc_* counter moving for this long, longer than two of the watchdog's 5 s lag refreshes,
# with every partition at its end: the worker has nothing left (a stage's output shows up as lag
# on the next stage's topic by the next refresh).
QUIET_S = 11.0


def scrape(port: int) -> dict[str, float]:
    """Sums of the soc_* counters in a worker's /metrics (labels summed away), its consumer lag
    summed over partitions, and how many partitions report lag."""
    sums = dict.fromkeys(COUNTERS, 0.0)
    sums["lag"] = sums["lag_partitions"] = 0.0
    for line in http_get(f"http://127.0.0.1:{port}/metrics").decode().splitlines():
        if line.startswith("soc_consumer_lag{"):
            sums["lag"] += float(line.rsplit(" ", 1)[1])
            sums["lag_partitions"] += 1
        elif line.startswith("soc_"):
            name = line.split("{", 1)[0].split(" ", 1)[0]
            if name in sums:
                sums[name] += float(line.rsplit(" ", 1)[1])
    return sums


def scrape_all(ports: list[int]) -> dict[str, float]:
    total: dict[str, float] = {}
    for port in ports:
        for name, value in scrape(port).items():
            total[name] = total.get(name, 0.0) + value
    return total


def settled(counters: dict[str, float], events: int) -> bool:
    """Every raw event counted, every partition read to its end (no lag reported during a rebalance)."""
    return (counters.get("soc_events_total", 0) >= events
            and counters.get("lag_partitions", 0) > 0 and counters.get("lag", 1) <= 0)


@dataclass
class Worker:
    process: Process
    port: int

    @property
    def pid(self) -> int:
        return self.process.popen.pid

    def alive(self) -> bool:
        return self.process.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.process.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def department_token_envs() -> dict[str, str]:
    """department -> the environment variable holding its API token (district.yaml); {} if unreadable."""
    try:
        return {d: dept.token_env for d, dept in district_config().district.departments.items()}
    except Exception:
        return {}


class BenchStack:
    """A fresh Stack (broker, Redis, topics) with its own Redis prefix and app id; cleans up on exit."""

    def __init__(self, phase: str, opts: Options):
        self.phase = phase
        self.opts = opts
        self.tag = f"{phase}-{uuid.uuid4().hex[:6]}"
        self.stack = None
        self.workers: list[Worker] = []
        # A bearer token per department (the soak's clerk uses the API as a department would).
        self.token_envs = department_token_envs()
        self.tokens = {d: f"bench-{d}-{uuid.uuid4().hex[:12]}" for d in self.token_envs}

    def __enter__(self) -> "BenchStack":
        base = self.opts.log_dir or Path(tempfile.mkdtemp(prefix="soc-bench-"))
        # The workers import this tree's code (a private copy of the repo can be benchmarked as is).
        env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")])),
               **{self.token_envs[d]: t for d, t in self.tokens.items()}, **self.opts.worker_env}
        self.stack = Stack.start(base / self.phase, redis_prefix=f"soc-bench-{self.tag}",
                                 app_id=f"soc-bench-{self.tag}", partitions=self.opts.partitions, extra_env=env)
        if self.tokens:
            self.verifier_token = self._duty_officer_token()
        return self

    def _duty_officer_token(self) -> str:
        """A duty officer's personal token: the closed loop's second person is a person, never a service
        credential, so the soak's clerk verifies as one."""
        async def make() -> str:
            client = aioredis.Redis.from_url(self.stack.redis_url)
            try:
                store = AccountStore(client, self.stack.redis_prefix, district_config(),
                                     lambda: datetime.now(timezone.utc))
                await store.add("bench_duty", "压测值班员", "ops_centre", UserRole.duty_officer,
                                uuid.uuid4().hex + "Aa1!")
                return await store.issue_token("bench_duty")
            finally:
                await client.aclose()

        return asyncio.run(make())

    def __exit__(self, *exc) -> None:
        try:
            self.stack.stop()
        finally:
            self._clearredis_client()

    def _clearredis_client(self) -> None:
        try:
            client = redis.Redis.from_url(self.stack.redis_url)
            batch = []
            for key in client.scan_iter(match=f"{self.stack.redis_prefix}:*", count=5000):
                batch.append(key)
                if len(batch) >= 5000:
                    client.unlink(*batch)
                    batch.clear()
            if batch:
                client.unlink(*batch)
            client.close()
        except Exception:
            pass  # a private Redis is gone with the stack

    @property
    def board_key(self) -> str:
        return f"{self.stack.redis_prefix}:board"

    def env(self) -> dict[str, str]:
        return self.stack.env()

    def start_workers(self, n: int) -> list[Worker]:
        started = []
        for i in range(n):
            proc, port = self.stack.start_worker(name=f"worker{i + 1}")
            started.append(Worker(proc, port))
        self.workers.extend(started)
        return started

    def wait_ready(self, workers: list[Worker]) -> float:
        t0 = time.monotonic()
        deadline = t0 + self.opts.ready_timeout
        pending = list(workers)
        while pending:
            for w in list(pending):
                if not w.alive():
                    raise RuntimeError(f"{self.phase}: worker exited with {w.process.popen.returncode}:\n{w.tail()}")
                if http_ok(f"http://127.0.0.1:{w.port}/readyz/processing"):
                    pending.remove(w)
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.phase}: workers not ready after {self.opts.ready_timeout:.0f}s")
            time.sleep(0.25)
        return time.monotonic() - t0


def redis_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


# ------------------------------------------------------------------ completion

def wait_drained(ports: list[int], events: int, timeout: float, workers: list[Worker] | None = None,
                 interval: float = 1.0) -> tuple[bool, dict[str, float]]:
    """Until the workers have settled (see settled()) with the same counts for QUIET_S. Scrapes
    once a second: the worker renders /metrics in its event loop, so scraping costs it throughput.

    Not soc_incidents_total == ticket writes: a replayed incident (the simulator repeats some
    flood readings verbatim) is counted as an incident but writes no ticket."""
    deadline = time.monotonic() + timeout
    last: dict[str, float] = {}
    quiet_since: float | None = None
    while True:
        for w in workers or ():
            if not w.alive():
                raise RuntimeError(f"worker exited with {w.process.popen.returncode}:\n{w.tail()}")
        previous = last
        try:
            last = scrape_all(ports)
        except OSError:
            last = {}
        now = time.monotonic()
        if last and settled(last, events) and _counts(last) == _counts(previous):
            quiet_since = quiet_since or now
            if now - quiet_since >= QUIET_S:
                return True, last
        else:
            quiet_since = None
        if now > deadline:
            return False, last
        time.sleep(interval)


def _counts(counters: dict[str, float]) -> dict[str, float]:
    return {name: counters.get(name) for name in COUNTERS}


def first_board_ms(client, key: str) -> int | None:
    found = client.xrange(key, "-", "+", count=1)
    return stream_ms(found[0][0]) if found else None


def last_board_ms(client, key: str) -> int | None:
    found = client.xrevrange(key, "+", "-", count=1)
    return stream_ms(found[0][0]) if found else None


def drain(bs: BenchStack, n_workers: int, n_events: int) -> dict:
    """Start n workers on a preloaded backlog, time readiness -> last ticket write, check completion."""
    client = redis_client(bs.stack.redis_url)
    spawned = time.time()
    workers = bs.start_workers(n_workers)
    pids = [w.pid for w in workers]
    broker_pid = bs.stack.processes[0].popen.pid
    first = ready_at = None
    deadline = time.monotonic() + self_timeout(bs.opts)
    # When the first worker is ready (it holds partitions and starts on the backlog), and the first
    # ticket write, caught before the board's MAXLEN trimming could drop it.
    while first is None:
        for w in workers:
            if not w.alive():
                raise RuntimeError(f"worker exited with {w.process.popen.returncode}:\n{w.tail()}")
            if ready_at is None and http_ok(f"http://127.0.0.1:{w.port}/readyz/processing"):
                ready_at = time.time()
                cpu0 = {pid: proc_cpu_seconds(pid) for pid in pids}
                broker_cpu0 = proc_cpu_seconds(broker_pid)
        first = first_board_ms(client, bs.board_key)
        if time.monotonic() > deadline:
            raise TimeoutError("no ticket written")
        time.sleep(0.05)
    if ready_at is None:  # ready and done between two polls: a tiny backlog
        ready_at = first / 1000
        cpu0 = {pid: proc_cpu_seconds(pid) for pid in pids}
        broker_cpu0 = proc_cpu_seconds(broker_pid)
    profilers = start_profilers(bs, workers) if bs.opts.profile else []
    try:
        ok, counters = wait_drained([w.port for w in workers], n_events, bs.opts.drain_timeout, workers)
    finally:
        profiles = stop_profilers(profilers)
    last = last_board_ms(client, bs.board_key)
    cpu = {pid: round(proc_cpu_seconds(pid) - cpu0[pid], 2) for pid in pids}
    broker_cpu = proc_cpu_seconds(broker_pid) - broker_cpu0
    per_worker = []
    for w in workers:
        try:
            per_worker.append(scrape(w.port)["soc_events_total"])
        except OSError:
            per_worker.append(None)
    tickets = client.zcard(f"{bs.stack.redis_prefix}:tickets")
    client.close()
    # From readiness, not from the first ticket: the stages overlap only partly (parse runs ahead
    # on a backlog), so the first ticket comes late and would leave parsing time out.
    seconds = max(last / 1000 - ready_at, 1e-3)
    return {
        "workers": n_workers,
        "drained": ok,
        "events": n_events,
        "events_counted": counters.get("soc_events_total"),
        "incidents": counters.get("soc_incidents_total"),
        "ticket_writes": counters.get("soc_pipeline_latency_seconds_count"),
        "rejected": counters.get("soc_events_rejected_total"),
        "tickets": tickets,
        "ready_after_spawn_s": round(ready_at - spawned, 1),
        "first_ticket_after_ready_s": round(first / 1000 - ready_at, 1),
        "seconds": round(seconds, 3),
        "events_per_s": round(n_events / seconds, 1),
        "ticket_writes_per_s": round((counters.get("soc_pipeline_latency_seconds_count") or 0) / seconds, 1),
        "worker_cpu_s": list(cpu.values()),
        "worker_cpu_share": [round(c / seconds, 2) for c in cpu.values()],
        "broker_cpu_share": round(broker_cpu / seconds, 2),
        "events_per_worker": per_worker,
        **({"profiles": profiles} if profiles else {}),
    }


def start_profilers(bs: BenchStack, workers: list[Worker]) -> list[tuple[subprocess.Popen, Path]]:
    """py-spy (not a dependency: `pip install py-spy`) on each worker, collapsed stacks for the drain."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(exe).exists():
        print("[bench] --profile: py-spy not found, skipping", flush=True)
        return []
    out = []
    for w in workers:
        path = bs.stack.log_dir / f"{w.process.name}.pyspy.txt"
        proc = subprocess.Popen([exe, "record", "--pid", str(w.pid), "--rate", "250", "--format", "raw",
                                 "--output", str(path), "--nonblocking"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out.append((proc, path))
    return out


def stop_profilers(profilers: list[tuple[subprocess.Popen, Path]]) -> list[str]:
    for proc, _ in profilers:
        proc.send_signal(signal.SIGINT)
    for proc, _ in profilers:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return [str(path) for _, path in profilers]


def self_timeout(opts: Options) -> float:
    return opts.ready_timeout + opts.drain_timeout
