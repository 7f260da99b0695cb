"""Emergency resources over HTTP (docs/plans.md): the nearest of a kind with their state, and assigning,
releasing and a shelter's occupancy, each a command through the ticket step at the resource's key."""
from __future__ import annotations

import uuid
from typing import Annotated, get_args

from faust import web
from pydantic import Field, StrictInt

from handlers import resources, wording
from handlers.permissions import Can, may_act
from schemas.enums import OPS_CENTRE
from schemas.plans import ResourceKind
from schemas.records import TicketAction
from schemas.resources import Resource, ResourceCommand, ResourceHold
from streams.http.api import ApiError, Body, JsonView, Principal, only_params, validate

TicketId = Annotated[str, Field(min_length=1, max_length=64)]


class TicketBody(Body):
    ticket_id: TicketId


class ReleaseBody(Body):
    ticket_id: TicketId | None = None  # default: the ticket holding it


class OccupancyBody(Body):
    occupancy: Annotated[StrictInt, Field(ge=0)]


def listed_json(http, listed: resources.Listed) -> dict:
    resource, hold = listed.resource, listed.hold
    return {
        "id": resource.id, "kind": resource.kind, "name": resource.name, "department": resource.department,
        "department_name": wording.department_name(http.config.district, resource.department),
        "lat": resource.lat, "lon": resource.lon, "capacity": resource.capacity, "state": listed.state,
        "ticket_id": hold.ticket_id if hold else None,
        "since": hold.since.isoformat() if hold and hold.since and hold.ticket_id else None,
        "occupancy": hold.occupancy if hold else None,
        "distance_m": round(listed.distance_m) if listed.distance_m is not None else None,
    }


def _near(raw: str | None) -> tuple[float, float] | None:
    if raw is None:
        return None
    try:
        lat, lon = (float(part) for part in raw.split(","))
    except ValueError:
        raise ApiError(400, "near must be <lat>,<lon>, e.g. near=22.5291,113.9104") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ApiError(400, "near must be <lat>,<lon> within -90..90 and -180..180")
    return lat, lon


class ResourceList(JsonView):
    async def get(self, request: web.Request) -> web.Response:
        who = await self.http.authenticate(request)
        who.require(Can.read_tickets)
        only_params(request.query, {"near", "kind"})
        kind = request.query.get("kind")
        if kind is not None and kind not in get_args(ResourceKind):
            raise ApiError(400, f"kind must be one of {', '.join(get_args(ResourceKind))}")
        found = resources.listing(self.http.config, self.http.pipeline.books.resources.by_key(),
                                  _near(request.query.get("near")), kind)
        return self.json({"items": [listed_json(self.http, listed) for listed in found]})


class ResourceAction(JsonView):
    async def post(self, request: web.Request, resource_id: str, action: str) -> web.Response:
        who = await self.http.authenticate(request)
        who.require(Can.read_tickets)
        if action not in ("assign", "release", "occupancy"):
            raise ApiError(404, f"no action {action!r}; actions: assign, release, occupancy")
        resource = self.http.config.resources.get(resource_id) if len(resource_id) <= 64 else None
        if resource is None:
            raise ApiError(404, f"no resource {resource_id}")
        if not may_act(who.role, TicketAction.accept):
            raise ApiError(403, f"the {who.role.value} role may not {action} resources")
        # A shelter's own department counts its people; its department or the centre sends a resource.
        allowed = {resource.department} if action == "occupancy" else {resource.department, OPS_CENTRE}
        if who.department not in allowed:
            raise ApiError(403, f"only {' or '.join(sorted(allowed))} may {action} {resource.name}")
        book = self.http.pipeline.books.resources
        hold = book.get(resource.id)
        data = await self.http.read_json(request)
        ticket_id = dedup_key = occupancy = None
        if action == "occupancy":
            occupancy = validate(OccupancyBody, data).occupancy
        else:
            body = validate(TicketBody if action == "assign" else ReleaseBody, data)
            ticket_id = body.ticket_id or (hold.ticket_id if hold else None)
            if ticket_id is None:
                raise ApiError(409, f"{resource.name} is not assigned")
            dedup_key = (await self.http.visible_ticket(ticket_id, who)).dedup_key
        command = ResourceCommand(event_id=f"api-{uuid.uuid4().hex}", resource_id=resource.id, action=action,
                                  at=self.http.clock(), by=who.actor.name, actor=who.department, ticket_id=ticket_id,
                                  dedup_key=dedup_key, occupancy=occupancy)
        why = resources.problem(self.http.config, hold, command)
        if why is not None:
            raise ApiError(409, why)
        await self.http.pipeline.topics.ticket_events.send(key=resources.resource_key(resource.id).encode(),
                                                           value=command.model_dump_json().encode())
        self.http.audit(request, "action", f"resource.{action}", who, target=resource.id, detail=ticket_id or "")
        return await self._taken(resource, command, who)

    async def _taken(self, resource: Resource, command: ResourceCommand, who: Principal) -> web.Response:
        book = self.http.pipeline.books.resources

        def held() -> ResourceHold | None:
            hold = book.get(resource.id)
            return hold if hold is not None and hold.event_id == command.event_id else None

        hold = await self.http.applied(held, command.event_id)
        if hold is None:
            return self.json({"accepted": True, "event_id": command.event_id}, status=202)
        listed = next(x for x in resources.listing(self.http.config, {resource.id: hold}) if x.resource.id == resource.id)
        return self.json(listed_json(self.http, listed))


ROUTES = [
    ("/api/resources", "resources", ResourceList),
    ("/api/resources/{resource_id}/{action}", "resource-action", ResourceAction),
]
