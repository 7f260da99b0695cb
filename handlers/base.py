"""The small surface every source module shares: parse(data) -> payload, classify(payload, ctx)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from schemas.config import Config
from schemas.enums import Category, Severity
from schemas.raw import SiteRegistration


@dataclass(frozen=True)
class Context:
    config: Config
    received_at: datetime
    sites: Mapping[str, SiteRegistration] = field(default_factory=dict)


@dataclass(frozen=True)
class Classification:
    category: Category
    subcategory: str
    # None: a normal reading, below every threshold of rules.yaml.
    severity: Severity | None
    title: str
    source_ref: str
    # What makes two reports "the same problem" within this source and category.
    identity: str
    observed_at: datetime
    lat: float
    lon: float
    description: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Heard:
    """A device that reports periodically (a gauge, a site sensor), seen alive: its heartbeat."""

    kind: str  # "<source>.<kind>", as rules.yaml `heartbeats.kinds` names it
    device: str
    lat: float
    lon: float
    at: datetime  # when its report arrived
    observed_at: datetime | None = None
    # A measured reading (rules.yaml all_clear kinds): below every threshold (calm), or not; with the
    # dedup key of the incident an alarming one raised.
    calm: bool | None = None
    alarm_key: str | None = None
