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
    """A repeat inside the window becomes an occurrence of its ticket; anything else opens one."""
    seen = dedup.match(entry, incident, dedup.window(config, incident.source.value))
    if seen is not None:
        event = TicketEvent(event_id=f"occ-{incident.incident_id}", ticket_id=seen.ticket_id,
                            action=TicketAction.occurrence, by=PIPELINE, actor=PIPELINE, at=now,
                            incident=incident)
        return Triage(dedup.remember(entry, incident, seen.ticket_id, now), event)
    # The problem came back after the latest ticket's window: link the new ticket to it. A report
    # from before it is an older problem of its own and links to nothing.
    newest = dedup.latest(entry)
    previous = newest.ticket_id if newest and incident.observed_at > newest.last_seen_at else None
    ticket = open_ticket(config, incident, route(config, incident.category, incident.severity, incident.community),
                         now, previous_ticket_id=previous)
    event = TicketEvent(event_id=f"open-{incident.incident_id}", ticket_id=ticket.ticket_id,
                        action=TicketAction.open, by=PIPELINE, actor=PIPELINE, at=now,
                        incident=incident, ticket=ticket)
    return Triage(dedup.remember(entry, incident, ticket.ticket_id, now), event)
