"""Emergency pre-plans (应急预案, plans.yaml) and the records of their runs.

A plan names what starts it (a response level for its hazard, a ticket of a category opened at a
severity, or a correlation rule linking two tickets) and the tasks its departments take when it starts.
A run is one start of a plan: it lives in the ticket step's table under `plan:<run_id>` beside the
tickets its tasks became, and on soc.plan-runs (compacted, mirrored whole on every worker) for readers.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, Field, field_validator, model_validator

from schemas.enums import Category, Hazard, Severity, Source
from schemas.response import Duration, Level
from schemas.strict import WIRE_FROZEN, Strict


# The categories whose response rules raise a hazard's level (rules.yaml response.triggers).
HAZARD_OF: dict[Category, Hazard] = {
    Category.flood_water_level: Hazard.flood, Category.flood_rainfall: Hazard.flood,
    Category.flood_waterlogging: Hazard.flood, Category.flood_pump_station: Hazard.flood,
    Category.typhoon: Hazard.typhoon,
    Category.traffic_accident: Hazard.traffic, Category.traffic_congestion: Hazard.traffic,
    Category.road_obstruction: Hazard.traffic,
}
# What a plan's task tickets are filed under (statistics and the inboxes' filters read these). Not a
# category whose tickets need a photo to resolve (routing.yaml evidence): a task is reported done by its
# checklist and the centre's verification.
TASK_CATEGORY = {Hazard.flood: Category.flood_rainfall, Hazard.typhoon: Category.typhoon,
                 Hazard.traffic: Category.traffic_accident}
TASK_SOURCE = {Hazard.flood: Source.flood, Hazard.typhoon: Source.flood, Hazard.traffic: Source.traffic}

ResourceKind = Literal["pump_truck", "rescue_crew", "sandbag_depot", "shelter", "barrier", "tow_truck",
                       "ambulance", "generator", "patrol_team"]
PlanRole = Literal["lead", "support"]


class LevelTrigger(Strict):
    """The response level for the plan's hazard at `level` or a more severe one."""

    by: Literal["level"]
    level: Level


class TicketTrigger(Strict):
    """A ticket of `category` opened at `min_severity` or above: one run per such ticket."""

    by: Literal["ticket"]
    category: Category
    min_severity: Severity


class CorrelationTrigger(Strict):
    """A correlation rule (rules.yaml `correlations`) linking two tickets: one run per cause ticket."""

    by: Literal["correlation"]
    rule: str


Trigger = Annotated[LevelTrigger | TicketTrigger | CorrelationTrigger, Field(discriminator="by")]


class PlanTask(Strict):
    department: str
    role: PlanRole
    title: Annotated[str, Field(min_length=1, max_length=100)]
    # From the run's start: to accept (签收) and to finish.
    accept: Duration = "10m"
    due: Duration
    checklist: list[Annotated[str, Field(min_length=1, max_length=200)]] = []
    resources: list[ResourceKind] = []


class Plan(Strict):
    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
    name: Annotated[str, Field(min_length=1, max_length=100)]
    name_en: str = ""
    hazard: Hazard
    severity: Severity = Severity.orange  # of its task tickets
    trigger: Trigger
    tasks: Annotated[list[PlanTask], Field(min_length=1, max_length=50)]

    @model_validator(mode="after")
    def _one_lead(self) -> Plan:
        if not any(task.role == "lead" for task in self.tasks):
            raise ValueError("a plan needs a task with role lead")
        return self


class Plans(Strict):
    plans: list[Plan] = []

    @field_validator("plans")
    @classmethod
    def _unique(cls, plans: list[Plan]) -> list[Plan]:
        ids = [p.id for p in plans]
        doubled = sorted({i for i in ids if ids.count(i) > 1})
        if doubled:
            raise ValueError(f"plan ids must be unique: {', '.join(doubled)}")
        return plans

    def get(self, plan_id: str) -> Plan | None:
        return next((p for p in self.plans if p.id == plan_id), None)


# ---------------------------------------------------------------- records

class Fired(BaseModel):
    """What started a run: its kind, and what the people reading the run are told about it."""

    model_config = WIRE_FROZEN
    on: Literal["level", "ticket", "correlation", "manual"]
    # level: the level and when the stretch at it began; ticket/correlation: the ticket; manual: who.
    level: Level | None = None
    ticket_id: str | None = None
    rule: str | None = None
    by: str | None = None
    reason: str = ""


class PlanActivate(BaseModel):
    """Start plan `plan_id` as run `run_id` (keyed `plan:<run_id>` on soc.ticket-events): the run id
    names the trigger, so the same trigger seen again, by a replay or another worker, starts nothing."""

    model_config = WIRE_FROZEN
    kind: Literal["plan_activate"] = "plan_activate"
    event_id: str
    run_id: str
    plan_id: str
    fired: Fired
    at: AwareDatetime
    by: str
    # Where the tasks are (the triggering ticket's place, else the district's centre).
    lat: float
    lon: float
    community: str | None = None


class PlanStandDown(BaseModel):
    """End run `run_id`: its open tasks are cancelled with `reason`, done ones stay."""

    model_config = WIRE_FROZEN
    kind: Literal["plan_stand_down"] = "plan_stand_down"
    event_id: str
    run_id: str
    at: AwareDatetime
    by: str
    actor: str
    reason: str


PlanCommand = Annotated[PlanActivate | PlanStandDown, Field(discriminator="kind")]


class ChecklistItem(BaseModel):
    """One line of a task's checklist, as its department ticked it (or not yet)."""

    model_config = WIRE_FROZEN
    item: str
    done: bool = False
    by: str | None = None
    at: AwareDatetime | None = None


class TaskPart(BaseModel):
    """On a ticket of kind task: the run it belongs to, its part in it, and its checklist."""

    model_config = WIRE_FROZEN
    run_id: str
    plan_id: str
    role: PlanRole
    checklist: list[ChecklistItem] = []
    resources: list[ResourceKind] = []
    # Stood down while still open: closed by the stand-down, not by its department's work.
    cancelled: bool = False


class PlanRun(BaseModel):
    """One run of a plan, as soc.plan-runs carries it (its tasks' state is on their tickets)."""

    model_config = WIRE_FROZEN
    run_id: str
    plan_id: str
    name: str
    fired: Fired
    started_at: AwareDatetime
    ended_at: AwareDatetime | None = None
    ended_reason: str = ""
    ended_by: str | None = None
    ended_event: str | None = None  # the stand-down's event id (its replay is told by it)
    tickets: list[str]  # one per task, in the plan's order
