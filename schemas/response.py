"""The emergency-response level (应急响应, 战时机制): its changes on soc.response, and rules.yaml's
`maintenance` windows and `response` section.

Levels follow the national scale: I (特别重大, red) is the most severe, IV (一般, blue) the least.
soc.response is keyed by trigger: `manual` for the centre's own decisions, `<rule>@<dedup key>` for a
rule fed by one source key (a typhoon signal station, a rain gauge). Each value is that trigger's whole
history of changes, so the level at any time is a pure function of the table (handlers/response.py).
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, Field, field_validator

from schemas.enums import Category, Hazard, Severity
from schemas.intervals import TimeInterval
from schemas.silences import Matcher, Mode
from schemas.strict import WIRE_FROZEN, Strict, unique_names

Level = Literal["I", "II", "III", "IV"]
LEVELS = ("I", "II", "III", "IV")
RANK = {"I": 4, "II": 3, "III": 2, "IV": 1}  # for comparing: the more severe, the higher
NUMBER = {"I": 1, "II": 2, "III": 3, "IV": 4}  # as the contract counts them (soc_response_level)
COLOUR = {"I": "red", "II": "orange", "III": "yellow", "IV": "blue"}
MANUAL = "manual"
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(s|m|h)$")


@lru_cache(maxsize=64)
def duration_s(text: str) -> float:
    number, unit = _DURATION.match(text).groups()
    return float(number) * {"s": 1, "m": 60, "h": 3600}[unit]


def checked_duration(text: str) -> str:
    if not _DURATION.match(text):
        raise ValueError(f"bad duration {text!r}: use a number with s, m or h, e.g. 90m")
    return text


# A duration in config: a number and s, m or h (e.g. 90m), checked at load.
Duration = Annotated[str, AfterValidator(checked_duration)]


class ResponseChange(BaseModel):
    model_config = WIRE_FROZEN
    at: AwareDatetime
    level: Level | None  # None: this trigger no longer calls for a level
    reason: str
    trigger: str  # "manual" or the rule's name
    by: str
    # The centre's decision for one hazard (a rule's hazard is its category's: schemas/plans.py HAZARD_OF);
    # left off the wire when none was named.
    hazard: Hazard | None = Field(None, exclude_if=lambda value: value is None)


class LevelDecision(BaseModel):
    """A person's decision on the response level, on soc.ticket-events at the key `response:manual`: one
    partition and the ticket step decide every decision in turn, so two made at once on two workers are
    both kept (each worker appending to the history it last read would lose one)."""

    model_config = WIRE_FROZEN
    kind: Literal["level_decision"] = "level_decision"
    event_id: str
    change: ResponseChange


class Maintenance(Strict):
    """A recurring window in which matching incidents are silenced, like a silence from config."""

    name: Annotated[str, Field(min_length=1, max_length=100)]
    matchers: Annotated[list[Matcher], Field(min_length=1)]
    time_intervals: Annotated[list[TimeInterval], Field(min_length=1)]
    mode: Mode = "suppress"
    comment: str = ""


class ResponseTrigger(Strict):
    """While the latest incident of one key in `category` is at `min_severity` or above, `level` is called for."""

    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    category: Category
    min_severity: Severity
    level: Level


class LevelEffects(Strict):
    # Incidents of these categories are graded one step higher (capped at red).
    severity_bump: list[Category] = []
    # New tickets' accept and resolve times are this share of the usual, but never below the floor.
    deadline_factor: Annotated[float, Field(gt=0, le=1)] = 1.0
    deadline_floor: Duration = "10m"
    # Departments added as watchers of red tickets (e.g. the leadership, a command post).
    red_watchers: list[str] = []
    # Tickets already open when the level comes into force get its deadlines too (from their own start)
    # and its red watchers, once; without it they keep the deadlines they were opened with.
    retroactive: bool = False



class ResponseRules(Strict):
    # How long a rule's level holds after its signal is lowered, so the level does not flap.
    hold: Duration = "30m"
    triggers: list[ResponseTrigger] = []
    levels: dict[Level, LevelEffects] = {}


    @field_validator("triggers")
    @classmethod
    def _unique(cls, triggers: list[ResponseTrigger]) -> list[ResponseTrigger]:
        return unique_names(triggers, "trigger")
