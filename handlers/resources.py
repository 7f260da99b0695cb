"""Emergency resources (resources.yaml) at work: the nearest of a kind with their state, and a resource
assigned to a ticket, released, or (a shelter) its occupancy set. No I/O.

A resource's commands meet at its key `resource:<id>` in the ticket step's table, so it is held by one
ticket at a time however many clerks ask at once. An assignment or a release also sends a command to the
ticket's key, which writes it into the ticket's history; its event id comes from the resource's command,
so a replay sends the same command again and the ticket takes it once.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from handlers.geo import distance_m
from schemas.config import Config
from schemas.enums import OPS_CENTRE
from schemas.records import KeyState, TicketAction, TicketEvent
from schemas.resources import Resource, ResourceCommand, ResourceHold

KEY_PREFIX = "resource:"
State = Literal["available", "assigned", "out_of_service"]


def resource_key(resource_id: str) -> str:
    return f"{KEY_PREFIX}{resource_id}"


def state_of(resource: Resource, hold: ResourceHold | None) -> State:
    if resource.out_of_service:
        return "out_of_service"
    return "assigned" if hold is not None and hold.ticket_id is not None else "available"


@dataclass(frozen=True)
class Listed:
    resource: Resource
    state: State
    hold: ResourceHold | None
    distance_m: float | None


def listing(config: Config, holds: Mapping[str, ResourceHold], near: tuple[float, float] | None = None,
            kind: str | None = None) -> list[Listed]:
    """The resources (of `kind`), nearest to `near` first (else in file order), each with its state."""
    found = []
    for resource in config.resources.resources:
        if kind is not None and resource.kind != kind:
            continue
        far = distance_m(near[0], near[1], resource.lat, resource.lon) if near is not None else None
        hold = holds.get(resource.id)
        found.append(Listed(resource, state_of(resource, hold), hold, far))
    if near is not None:
        found.sort(key=lambda listed: listed.distance_m)
    return found


@dataclass(frozen=True)
class Decided:
    """What the step does with a resource command: keep `state`, publish `hold`, send `commands`."""

    state: KeyState | None
    hold: ResourceHold | None = None
    commands: tuple[tuple[str, TicketEvent], ...] = ()
    replayed: bool = False
    refused: str = ""


def problem(config: Config, hold: ResourceHold | None, command: ResourceCommand) -> str | None:
    """Why the command may not be applied to the resource as `hold` says it stands; None when it may."""
    resource = config.resources.get(command.resource_id)
    if resource is None:
        return f"unknown resource {command.resource_id}"
    if command.action == "occupancy":
        if resource.kind != "shelter":
            return "only a shelter has an occupancy"
        if command.actor != resource.department:
            return f"only the shelter's department ({resource.department}) sets its occupancy"
        if command.occupancy is None or not 0 <= command.occupancy <= resource.capacity:
            return f"occupancy must be 0 to {resource.capacity}"
        return None
    if command.actor not in (resource.department, OPS_CENTRE):
        return f"only {resource.department} or the operations centre assigns {resource.name}"
    if command.ticket_id is None or command.dedup_key is None:
        return f"{command.action} needs the ticket"
    held_by = hold.ticket_id if hold is not None else None
    if command.action == "assign":
        if resource.out_of_service:
            return f"{resource.name} is out of service"
        if held_by is not None:
            return f"{resource.name} is already assigned to ticket {held_by}"
    elif held_by != command.ticket_id:
        return f"{resource.name} is not assigned to ticket {command.ticket_id}"
    return None


def on_command(config: Config, state: KeyState | None, command: ResourceCommand, key: str) -> Decided:
    hold = state.hold if state is not None else None
    if hold is not None and hold.event_id == command.event_id:
        return Decided(state, hold, _to_ticket(config, command), replayed=True)
    why = problem(config, hold, command)
    if why is not None:
        return Decided(state, refused=why)
    base = hold or ResourceHold(resource_id=command.resource_id, event_id=command.event_id)
    if command.action == "assign":
        changed = base.model_copy(update={"ticket_id": command.ticket_id, "since": command.at, "by": command.by,
                                          "event_id": command.event_id})
    elif command.action == "release":
        changed = base.model_copy(update={"ticket_id": None, "since": command.at, "by": command.by,
                                          "event_id": command.event_id})
    else:
        changed = base.model_copy(update={"occupancy": command.occupancy, "occupancy_at": command.at,
                                          "event_id": command.event_id})
    new = (state or KeyState(dedup_key=key)).model_copy(update={"hold": changed})
    return Decided(new, changed, _to_ticket(config, command))


def _to_ticket(config: Config, command: ResourceCommand) -> tuple[tuple[str, TicketEvent], ...]:
    """The entry an assignment or a release makes in the ticket's history (none for an occupancy)."""
    if command.action == "occupancy":
        return ()
    resource = config.resources.get(command.resource_id)
    action = TicketAction.assign_resource if command.action == "assign" else TicketAction.release_resource
    event = TicketEvent(event_id=f"{command.event_id}-ticket", ticket_id=command.ticket_id, action=action,
                        by=command.by, actor=command.actor, at=command.at, resource_id=command.resource_id,
                        note=resource.name if resource is not None else command.resource_id)
    return ((command.dedup_key, event),)
