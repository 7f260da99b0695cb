"""Silences (屏蔽): matchers over an incident's labels and a time span, made by the duty officer.

A silence's `ends_at` is moved to the time of a DELETE: an incident is silenced when it reached Kafka
inside [starts_at, ends_at) and after the silence was created, so deciding it again later (a replay)
gives the same answer.
"""
from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from schemas.strict import WIRE_FROZEN
from schemas.times import SaneTime

# The labels a matcher can name; `ref` is the source's own station, site, camera, intersection or road id.
LABELS = ("source", "category", "subcategory", "severity", "community", "department", "ref")
MAX_SPAN = timedelta(days=7)
Mode = Literal["suppress", "quiet"]


class Matcher(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: Literal["source", "category", "subcategory", "severity", "community", "department", "ref"]
    value: Annotated[str, Field(min_length=1, max_length=200)]
    is_regex: bool = False
    is_equal: bool = True

    @model_validator(mode="after")
    def _regex_compiles(self) -> Matcher:
        if self.is_regex:
            try:
                re.compile(self.value)
            except re.error as exc:
                raise ValueError(f"value is not a valid regular expression: {exc}") from None
        return self


class _SilenceFields(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)
    matchers: Annotated[list[Matcher], Field(min_length=1, max_length=20)]
    starts_at: SaneTime
    ends_at: SaneTime
    comment: Annotated[str, Field(min_length=1, max_length=1000)]
    mode: Mode = "suppress"

    @field_validator("matchers")
    @classmethod
    def _more_than_severity(cls, matchers: list[Matcher]) -> list[Matcher]:
        if all(m.name == "severity" for m in matchers):
            raise ValueError("a silence needs at least one matcher besides severity")
        return matchers


class SilenceSpec(_SilenceFields):
    """What the duty officer asks for (POST /api/silences)."""

    @model_validator(mode="after")
    def _span(self) -> SilenceSpec:
        if self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        if self.ends_at - self.starts_at > MAX_SPAN:
            raise ValueError("a silence lasts at most 7 days")
        return self


class Silence(_SilenceFields):
    """A silence as stored on soc.silences (keyed by silence_id). A DELETE moves ends_at to its own
    time (never before starts_at: a pending silence deleted never applies)."""

    silence_id: str
    created_by: str
    created_at: AwareDatetime
    expired_by: str | None = None


class InhibitRule(BaseModel):
    """rules.yaml `inhibit`: while a ticket matching `source` is open, new incidents matching `target`
    with the same values of the `equal` labels (and within `within_m` metres, when given) open no ticket."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    source: Annotated[list[Matcher], Field(min_length=1)]
    target: Annotated[list[Matcher], Field(min_length=1)]
    equal: list[Literal["source", "category", "subcategory", "severity", "community", "department", "ref"]] = []
    within_m: Annotated[float, Field(gt=0)] | None = None


class Inhibitor(BaseModel):
    """A ticket that inhibits others, on soc.inhibitors (keyed by ticket id; null once it has left)."""

    model_config = WIRE_FROZEN
    ticket_id: str
    rules: list[str]
    labels: dict[str, list[str]]
    lat: float
    lon: float
    opened_at: AwareDatetime
    closed_at: AwareDatetime | None = None
