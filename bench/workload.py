"""What the benchmark sends: the simulator's four-source mix as Kafka messages (with the incident id
the worker will give each event), a backlog of them over one storm cycle, and producers that send them
as fast as aiokafka goes or at a paced rate."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from aiokafka import AIOKafkaProducer

from handlers.base import Context
from handlers.intake import Rejected, to_incident
from schemas.config import Config, load_config
from schemas.raw import SiteRegistration
from streams import topics
from streams.ops.simulator import Simulator, encode, record_key
from streams.settings import Settings

STORM_CYCLE = timedelta(minutes=20)


@dataclass
class Workload:
    sites: list[tuple[bytes, bytes]]                     # (key, value) for soc.sites
    events: list[tuple[str, bytes | None, bytes]]        # (topic, key, value)
    sources: dict[str, int]
    malformed: int

    @property
    def avg_bytes(self) -> float:
        return sum(len(v) for _, _, v in self.events) / max(len(self.events), 1)


def district_config() -> Config:
    """The deployment's configuration, as the worker reads it (SOC_CONFIG_DIR)."""
    return load_config(Settings().config_dir)


class Generator:
    """The simulator's four-source mix as Kafka messages, plus each event's incident id."""

    def __init__(self, seed: int, scenario: str, start: datetime):
        self.config = district_config()
        self.sim = Simulator(seed, scenario, self.config.district, start=start)
        whitelist = self.sim.whitelist(start)
        self.sites = {s["site_id"]: SiteRegistration.model_validate(s) for s in whitelist}
        self.site_messages = [(s["site_id"].encode(), encode(s)) for s in whitelist]

    def batch(self, now: datetime, n: int) -> list[tuple[str, bytes | None, bytes]]:
        return [(topics.RAW_TOPICS[e.source], record_key(e.payload), encode(e.payload))
                for e in self.sim.generate(now, n)]

    def incident_ids(self, events: list[tuple[str, bytes | None, bytes]], now: datetime) -> list[str | None]:
        """What the worker will call each event's incident (None: rejected or nothing to act on)."""
        by_topic = {t: s for s, t in topics.RAW_TOPICS.items()}
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
    asyncio.run(produce(bootstrap, [(topics.SITES, k, v) for k, v in workload.sites]))
    return asyncio.run(produce(bootstrap, workload.events))


async def paced(producer, messages: list, rate: float, sent_at: list[float], offset: int) -> float:
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
