"""What soc.ticket-events carries, as one discriminated union: the ticket step decodes a value by its `kind`.

A command on a ticket (TicketEvent) has no `kind`: records written before the other inputs existed, and every
command since, read as commands. Each other input names itself: a correlation cell's sighting, a plan run's
start or stand-down, a resource command, a preventive ticket's opening, a person's response-level decision.
"""
from __future__ import annotations

from typing import Annotated, Any

from pydantic import Discriminator, Tag, TypeAdapter

from schemas.correlation import Sighting
from schemas.plans import PlanActivate, PlanStandDown
from schemas.preventive import PreventiveOpen
from schemas.records import TicketEvent
from schemas.resources import ResourceCommand
from schemas.response import LevelDecision

COMMAND = "command"


def _kind(value: Any) -> str:
    kind = value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)
    return kind if isinstance(kind, str) else COMMAND


StepInput = Annotated[
    Annotated[TicketEvent, Tag(COMMAND)]
    | Annotated[Sighting, Tag("sighting")]
    | Annotated[PlanActivate, Tag("plan_activate")]
    | Annotated[PlanStandDown, Tag("plan_stand_down")]
    | Annotated[ResourceCommand, Tag("resource")]
    | Annotated[PreventiveOpen, Tag("preventive_open")]
    | Annotated[LevelDecision, Tag("level_decision")],
    Discriminator(_kind),
]


# Built with the models it names, as a model's own validator is.
STEP_INPUT: TypeAdapter[StepInput] = TypeAdapter(StepInput)
