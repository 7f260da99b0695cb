"""The stream tier: the real Faust agents driven through `agent.test_context()`, no broker, no Redis.

The pipeline is built by the same factory as the worker's, from settings pointing where nothing
answers (a test that reached for the network would fail, not talk to a real service), with a
fixed clock and a mock in place of the Redis store. Sends to topics are replaced by recorders:
that is the point of this tier (the integration tier uses the real broker and Redis).
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from unittest.mock import AsyncMock
from zoneinfo import ZoneInfo

import pytest
from prometheus_client import CollectorRegistry

from handlers import escalation
from schemas.config import load_config
from streams.metrics import Metrics
from streams.settings import Settings
from streams.store import TicketStore
from streams.topology.app import build_app
from streams.topology.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
# Tuesday 12 May 2026, 09:30 in the district, as in the unit tier.
NOW = datetime(2026, 5, 12, 9, 30, tzinfo=ZoneInfo("Asia/Shanghai"))


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory) -> Pipeline:
    settings = Settings(kafka_brokers="127.0.0.1:1", redis_url="redis://127.0.0.1:1/0", web_port=1,
                        app_id="soc-stream-tests", data_dir=tmp_path_factory.mktemp("soc-data"))
    config = load_config(settings.config_dir)
    registry = CollectorRegistry()
    store = AsyncMock(spec=TicketStore)
    store.redis, store.prefix = AsyncMock(), "soc-stream-tests"
    store.next_due = escalation.Dues(config)  # the real due times: the ticket step checks each ticket with them
    built = build_app(settings, config, store, lambda: NOW, Metrics(registry, tuple(config.district.departments)),
                      registry)
    # No broker here: the mirrored silences and response level are empty, and caught up.
    for mirror in built.mirrors:
        mirror.ready.set()
    return built


class Recorder:
    """Stands in for Topic.send: records (key, value) and lets a test wait for the n-th send."""

    def __init__(self, name: str):
        self.name = name
        self.calls: list[tuple[bytes | None, bytes | None]] = []

    def __call__(self, *args, key=None, value=None, **kwargs):
        self.calls.append((key, value))

    async def wait_for(self, n: int, timeout: float = 3.0) -> list[tuple[bytes | None, bytes | None]]:
        """The first n sends. put() returns once the value entered the agent's stream, before the
        agent body has run, so the last message's effects must be waited for."""
        try:
            await eventually(lambda: len(self.calls) >= n, f"{n} sends to {self.name}", timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; sent: {self.calls!r}") from None
        return self.calls[:n]


@pytest.fixture
def sent(pipeline, monkeypatch) -> dict[str, Recorder]:
    """Recorders for every topic the agents and timers write to, keyed by its name in `pipeline.topics`:
    the agents' sends (through the producer, each acknowledged at once) and the timers' send_soon."""
    recorders = {}
    by_topic = {}
    for name in ("incidents", "dead_letters", "ticket_events", "tickets"):
        recorders[name] = Recorder(name)
        by_topic[getattr(pipeline.topics, name).get_topic_name()] = recorders[name]
        monkeypatch.setattr(getattr(pipeline.topics, name), "send_soon", recorders[name])
    # Every other topic the agents write (soc.tickets' neighbours: soc.response, soc.plan-runs, ...), by name.
    others = Recorder("other topics")
    recorders["other topics"] = others

    async def send(topic, key, value, partition, timestamp, headers):
        by_topic.get(topic, others)(key=key, value=value)
        acknowledged = asyncio.get_running_loop().create_future()
        acknowledged.set_result(None)
        return acknowledged

    monkeypatch.setattr(pipeline.app.producer, "send", send)
    return recorders


@pytest.fixture
def store(pipeline) -> AsyncMock:
    """The pipeline's Redis store, a mock (save_with_retry, record_result), fresh per test."""
    pipeline.store.reset_mock()
    pipeline.store.save_with_retry.return_value = [True]
    return pipeline.store


@pytest.fixture(scope="session")
def raw() -> Callable[[str, str], bytes]:
    """raw("flood", "waterlogging_underpass") -> the captured payload's bytes."""

    def load(source: str, name: str) -> bytes:
        return (DATA / source / f"{name}.json").read_bytes()

    return load


async def eventually(predicate: Callable[[], bool], what: str, timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.005)


async def put_on(agent, topic: str, value: bytes | None, key: bytes | None = None, at: datetime = NOW) -> None:
    """agent.put with the record's topic and timestamp set, as the broker would deliver it (the
    ticket agent reads two topics; the parse agents stamp received_at from the timestamp)."""
    to_message = agent.to_message

    def on_topic(*args, **kwargs):
        message = to_message(*args, **{**kwargs, "timestamp": at.timestamp()})
        message.topic = topic
        return message

    agent.to_message = on_topic
    try:
        await agent.put(value, key=key)
    finally:
        agent.to_message = to_message


def metric(pipeline, name: str, **labels: str) -> float:
    return pipeline.registry.get_sample_value(name, labels) or 0.0
