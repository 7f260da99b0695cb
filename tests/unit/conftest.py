"""Shared fixtures of the unit tier: the real config, a fixed clock, the captured payloads.

No test reads the wall clock: every handler gets `now` / `received_at` from here.
"""
from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from handlers.base import Context
from schemas.config import Config, load_config
from schemas.raw import SiteRegistration

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / "deploy" / "config"
DATA = ROOT / "tests" / "data"
SHANGHAI = ZoneInfo("Asia/Shanghai")

# Tuesday 12 May 2026, 09:30 in the district: a working day, inside working hours.
NOW = datetime(2026, 5, 12, 9, 30, tzinfo=SHANGHAI)


@pytest.fixture(scope="session")
def config() -> Config:
    return load_config(CONFIG_DIR)


@pytest.fixture
def copy(tmp_path) -> Path:
    """A copy of the real config directory to break."""
    target = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, target)
    return target


@pytest.fixture
def clock() -> datetime:
    """The injected 'now' of every test (an aware datetime)."""
    return NOW


@pytest.fixture(scope="session")
def sample() -> Callable[[str, str], dict]:
    """sample("traffic", "accident_minor") -> the captured payload as a dict (a fresh copy)."""

    def load(source: str, name: str) -> dict:
        return json.loads((DATA / source / f"{name}.json").read_text(encoding="utf-8"))

    return load


@pytest.fixture(scope="session")
def sample_bytes() -> Callable[[str, str], bytes]:
    """The captured payload exactly as it arrived on the topic."""

    def load(source: str, name: str) -> bytes:
        return (DATA / source / name).read_bytes()

    return load


@pytest.fixture(scope="session")
def sites() -> dict[str, SiteRegistration]:
    """The whitelist as the worker holds it: every registration in tests/data/sites."""
    regs = [SiteRegistration.model_validate_json(p.read_bytes()) for p in sorted((DATA / "sites").glob("*.json"))]
    return {reg.site_id: reg for reg in regs}


@pytest.fixture
def ctx(config: Config, clock: datetime, sites: dict[str, SiteRegistration]) -> Context:
    return Context(config=config, received_at=clock, sites=sites)


@pytest.fixture
def incident(ctx: Context, sample):
    """make(source, name, received_at=None, **changes) -> the Incident of a captured payload with some
    fields changed, parsed as the worker parses it (received at `clock` unless told otherwise)."""
    from handlers.intake import to_incident

    def make(source: str = "traffic", name: str = "accident_minor", received_at: datetime | None = None, **changes):
        data = sample(source, name)
        data.update(changes)
        context = ctx if received_at is None else Context(ctx.config, received_at, ctx.sites)
        return to_incident(source, json.dumps(data, ensure_ascii=False).encode(), context)

    return make
