"""Acting before the call (未诉先办): the command that opens a preventive ticket at a recurring place
when a rainstorm or typhoon warning comes (handlers/preventive.py, rules.yaml `preventive`)."""
from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel

from schemas.cap import Kind
from schemas.enums import Category, Severity
from schemas.strict import WIRE_FROZEN


class PreventiveOpen(BaseModel):
    """Open the preventive ticket of one recurring place for one warning period, keyed
    `preventive:<period>:<place>` on soc.ticket-events: the key names the period and the place, so the
    same command built again (a replay, another worker, the next tick) opens nothing more."""

    model_config = WIRE_FROZEN
    kind: Literal["preventive_open"] = "preventive_open"
    event_id: str
    period: str  # <warning>@<start of the period, UTC stamp>
    warning: Kind
    period_start: AwareDatetime
    at: AwareDatetime  # when the command was built: the ticket's dispatch time
    category: Category
    severity: Severity
    department: str
    lat: float
    lon: float
    community: str | None = None
    title: str
    description: str
