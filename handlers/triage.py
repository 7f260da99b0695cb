"""classify -> dedup -> route -> ticket event: the decision the triage agent applies per incident."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from handlers import dedup
from handlers.routing import route
from handlers.tickets import PIPELINE, open_ticket
from schemas.config import Config
from schemas.records import Incident, TicketAction, TicketEvent


@dataclass(frozen=True)
class Triage:
    entry: dedup.DedupEntry
    event: TicketEvent


def triage(config: Config, entry: dedup.DedupEntry | None, incident: Incident, now: datetime) -> Triage:
    """A repeat inside the window becomes an occurrence of the known ticket; anything else opens one."""
    if dedup.is_repeat(entry, incident, dedup.window(config, incident.source.value)):
        event = TicketEvent(event_id=f"occ-{incident.incident_id}", ticket_id=entry.ticket_id,
                            action=TicketAction.occurrence, by=PIPELINE, actor=PIPELINE, at=now,
                            incident=incident)
        return Triage(dedup.remember(entry, incident, entry.ticket_id, now), event)
    newer = dedup.is_newer(entry, incident)
    ticket = open_ticket(config, incident, route(config, incident.category, incident.severity, incident.community),
                         now, previous_ticket_id=entry.ticket_id if entry and newer else None)
    event = TicketEvent(event_id=f"open-{incident.incident_id}", ticket_id=ticket.ticket_id,
                        action=TicketAction.open, by=PIPELINE, actor=PIPELINE, at=now,
                        incident=incident, ticket=ticket)
    # A report from long before the current ticket gets a ticket of its own but does not take the
    # key over: the current problem keeps collecting its reports.
    return Triage(dedup.remember(None, incident, ticket.ticket_id, now) if newer else entry, event)
