"""The stream tier: the real Faust agents driven through `agent.test_context()`, no broker, no Redis.

streams.app builds its App, topics and Redis client at import from SOC_* settings. They are set
here to addresses where nothing answers (so a test that reached for the network would fail, not
talk to a real service), the module is imported, and the environment is restored so later tiers
(integration, which starts workers from os.environ) see what they would have seen.

Sends to topics are replaced by recorders: that is the point of this tier (the integration tier
uses the real broker).
"""
from __future__ import annotations

import asyncio
import importlib
import os
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from types import ModuleType
from unittest.mock import AsyncMock
from zoneinfo import ZoneInfo

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data"
# Tuesday 12 May 2026, 09:30 in the district, as in the unit tier.
NOW = datetime(2026, 5, 12, 9, 30, tzinfo=ZoneInfo("Asia/Shanghai"))

UNREACHABLE = {
    "SOC_KAFKA_BROKERS": "127.0.0.1:1",
    "SOC_REDIS_URL": "redis://127.0.0.1:1/0",
    "SOC_WEB_PORT": "1",
    "SOC_APP_ID": "soc-stream-tests",
}


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory) -> ModuleType:
    """The streams.app module, built against unreachable services."""
    if "streams.app" in sys.modules:
        module = sys.modules["streams.app"]
    else:
        saved = dict(os.environ)
        try:
            os.environ.update(UNREACHABLE, SOC_DATA_DIR=str(tmp_path_factory.mktemp("soc-data")))
            module = importlib.import_module("streams.app")
        finally:
            os.environ.clear()
            os.environ.update(saved)
    assert module.settings.kafka_brokers == UNREACHABLE["SOC_KAFKA_BROKERS"], \
        "streams.app was imported elsewhere with real settings"
    return module


class Recorder:
    """Stands in for Topic.send: records (key, value) and lets a test wait for the n-th send."""

    def __init__(self, name: str):
        self.name = name
        self.calls: list[tuple[bytes | None, bytes | None]] = []
        self.mock = AsyncMock(side_effect=self._record)

    async def _record(self, *args, key=None, value=None, **kwargs):
        self.calls.append((key, value))

    async def __call__(self, *args, **kwargs):
        return await self.mock(*args, **kwargs)

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
    """Recorders for every topic the agents write to, keyed by the app module's attribute name."""
    recorders = {}
    for name in ("incident_topic", "deadletter_topic", "ticket_event_topic", "ticket_topic"):
        recorders[name] = Recorder(name)
        monkeypatch.setattr(getattr(pipeline, name), "send", recorders[name])
    return recorders


@pytest.fixture
def store(pipeline, monkeypatch) -> AsyncMock:
    """The Redis projection replaced by a mock (save_with_retry, record_result)."""
    mock = AsyncMock()
    mock.save_with_retry.return_value = [True]
    monkeypatch.setattr(pipeline, "store", mock)
    return mock


@pytest.fixture(autouse=True)
def clock(pipeline, monkeypatch) -> datetime:
    """The agents read the time through streams.app.utc_now: fixed here."""
    monkeypatch.setattr(pipeline, "utc_now", lambda: NOW)
    return NOW


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


def metric(pipeline, name: str, **labels: str) -> float:
    return pipeline.registry.get_sample_value(name, labels) or 0.0
