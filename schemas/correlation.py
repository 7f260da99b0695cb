"""Cross-source correlation (rules.yaml `correlations`): a cause ticket and an effect ticket of two
sources, near in place and time, are linked, and the effect is graded up.

A new ticket that can play a part in a rule is *sighted* on the rule's cells: the four cells around the
grid corner nearest it, cells twice the rule's distance across, so any two tickets within the distance
share a cell (`corr:<rule>:<cell>`; a district-wide rule has one cell). The sighting travels on
soc.ticket-events keyed by the cell, so every sighting of a cell meets on one worker, in one state of
dedup_key_to_tickets, beside the dedup keys (handlers/correlation.py).
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.enums import Category, Severity
from schemas.response import Duration
from schemas.strict import WIRE_FROZEN

Role = Literal["cause", "effect"]


class CorrelationSide(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    category: Category
    min_severity: Severity = Severity.blue


class AddWatchers(BaseModel):
    """Departments added as watchers of the cause and of the effect once they are linked."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    cause: list[str] = []
    effect: list[str] = []


class CorrelationRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[^\s:]+$")]
    cause: CorrelationSide
    effect: CorrelationSide
    # None: district-wide.
    within_m: Annotated[float, Field(gt=0, le=20_000)] | None = None
    window: Duration = "30m"
    # Labels that must be equal on both tickets (a road: the same road's name in both reports).
    equal: list[Literal["road", "community"]] = []
    # The effect is graded to at least this, and/or this many steps up (capped at red).
    effect_severity_floor: Severity | None = None
    effect_severity_steps: Annotated[int, Field(ge=0, le=3)] = 0
    add_watchers: AddWatchers = AddWatchers()



class Sighting(BaseModel):
    """A new ticket as one rule's cell sees it."""

    model_config = WIRE_FROZEN
    kind: Literal["sighting"] = "sighting"
    event_id: str  # sight-<rule>-<role>-<ticket id>: the same ticket sighted again is a replay
    cell: str
    rule: str
    role: Role
    ticket_id: str
    dedup_key: str
    severity: Severity
    lat: float
    lon: float
    at: AwareDatetime  # the ticket's dispatch
    road: str | None = None
    community: str | None = None


class Partner(BaseModel):
    """The other ticket of a pair a sighting made in its cell: what the pair's relate commands name."""

    model_config = WIRE_FROZEN
    ticket_id: str
    dedup_key: str
    at: AwareDatetime  # its dispatch


class Part(BaseModel):
    """A ticket's part in a rule, sighted once: when an incident first made it qualify (it opened at,
    or was raised to, the side's severity). Kept per incident, so a replay sights exactly that again."""

    model_config = WIRE_FROZEN
    rule: str
    role: Role
    ticket_id: str
    severity: Severity


class Related(BaseModel):
    """On a ticket: another ticket it is linked to by a rule, and the part that ticket plays."""

    model_config = WIRE_FROZEN
    ticket_id: str
    rule: str
    role: Role
