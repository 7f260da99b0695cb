"""Emergency resources (resources.yaml): pump trucks, rescue crews, sandbag depots, shelters, each with its
department, place and capacity, and the records of who holds one (soc.resources).

A resource is held by at most one ticket at a time. Its assignment is decided in the ticket step's table
under `resource:<id>` (so two clerks assigning it at once meet in one place, and a replay decides again as
the first run did), published on soc.resources (compacted, mirrored whole on every worker) and written
into the ticket's history by a command the step sends to the ticket's key.
"""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, Field, field_validator

from schemas.plans import ResourceKind
from schemas.strict import WIRE_FROZEN, Strict


class Resource(Strict):
    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
    kind: ResourceKind
    name: Annotated[str, Field(min_length=1, max_length=100)]
    department: str
    lat: Annotated[float, Field(ge=-90, le=90)]
    lon: Annotated[float, Field(ge=-180, le=180)]
    # What it holds or does: persons for a shelter or a crew, bags for a depot, m³/h for a pump.
    capacity: Annotated[int, Field(ge=0)]
    # In repair, or otherwise not to be sent: listed, never assigned.
    out_of_service: bool = False


class Resources(Strict):
    resources: list[Resource] = []

    @field_validator("resources")
    @classmethod
    def _unique(cls, resources: list[Resource]) -> list[Resource]:
        ids = [r.id for r in resources]
        doubled = sorted({i for i in ids if ids.count(i) > 1})
        if doubled:
            raise ValueError(f"resource ids must be unique: {', '.join(doubled)}")
        return resources

    def get(self, resource_id: str) -> Resource | None:
        return next((r for r in self.resources if r.id == resource_id), None)


class ResourceCommand(BaseModel):
    """On soc.ticket-events keyed `resource:<id>`: assign the resource to a ticket, release it, or (a
    shelter) set how many people it holds."""

    model_config = WIRE_FROZEN
    kind: Literal["resource"] = "resource"
    event_id: str
    resource_id: str
    action: Literal["assign", "release", "occupancy"]
    at: AwareDatetime
    by: str
    actor: str  # the department acting
    # assign and release: the ticket and its dedup key (where its history entry is sent).
    ticket_id: str | None = None
    dedup_key: str | None = None
    occupancy: int | None = None


class ResourceHold(BaseModel):
    """A resource as soc.resources carries it: the ticket holding it (None: available), and a shelter's
    occupancy."""

    model_config = WIRE_FROZEN
    resource_id: str
    ticket_id: str | None = None
    since: AwareDatetime | None = None
    by: str | None = None
    occupancy: int | None = None
    occupancy_at: AwareDatetime | None = None
    # The command that last changed it (its replay is told by it).
    event_id: str
