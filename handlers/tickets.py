"""Opening tickets and folding further occurrences into them."""
from __future__ import annotations

from datetime import datetime

from handlers import joint
from handlers.deadlines import due_dates
from handlers.intake import digest
from handlers.privacy import never_masked
from handlers.routing import Route
from schemas.config import Config
from schemas.enums import TicketStatus
from schemas.records import HistoryEntry, HistoryKind, Incident, Ticket

PIPELINE = "pipeline"
# The latest incident ids listed on the ticket, for people. Whether an incident was already
# counted is decided by the key's state (KeyState's marks and recent ids), never by this list.
LISTED_INCIDENTS = 20
# Occurrence entries kept in the history (the count is in `occurrences`): a flood station's ticket
# in a storm took 300 of them, and every write re-serializes the whole ticket (docs/performance.md).
MAX_OCCURRENCE_ENTRIES = 20


def ticket_id_for(incident: Incident) -> str:
    """Deterministic, so a replayed incident maps to the ticket it opened the first time."""
    return never_masked(f"T{incident.observed_at.strftime('%Y%m%d')}-{digest(incident.incident_id, size=4)}")


def open_ticket(config: Config, incident: Incident, route: Route, now: datetime,
                previous_ticket_id: str | None = None) -> Ticket:
    accept_due, resolve_due = due_dates(config, incident.category, incident.severity, now)
    note = "管辖范围外 out of jurisdiction" if route.out_of_jurisdiction else ""
    return Ticket(
        ticket_id=ticket_id_for(incident),
        incident_id=incident.incident_id,
        source_ref=incident.source_ref,
        dedup_key=incident.dedup_key,
        department=route.department,
        watchers=list(route.watchers),
        out_of_jurisdiction=route.out_of_jurisdiction,
        source=incident.source,
        category=incident.category,
        subcategory=incident.subcategory,
        severity=incident.severity,
        opened_severity=incident.severity,
        title=incident.title,
        description=incident.description,
        community=incident.community,
        lat=incident.lat,
        lon=incident.lon,
        status=TicketStatus.dispatched,
        incident_ids=[incident.incident_id],
        observed_at=incident.observed_at,
        received_at=incident.received_at,
        last_seen_at=incident.observed_at,
        dispatched_at=now,
        accept_due=accept_due,
        resolve_due=resolve_due,
        previous_ticket_id=previous_ticket_id,
        channel=incident.details.get("channel"),
        road=incident.details.get("road"),
        media_url=incident.details.get("media_url"),
        support=joint.routed(config, incident.category, incident.severity, route.department, now),
        history=[HistoryEntry(at=now, by=PIPELINE, action="dispatch", note=f"{route.department} {note}".strip(),
                             kind=HistoryKind.dispatch, department=route.department)],
    )


def add_occurrence(ticket: Ticket, incident: Incident, now: datetime) -> Ticket:
    """The ticket with one more occurrence (the caller knows the incident was not counted yet)."""
    severity = ticket.severity.raise_to(incident.severity)
    history = [*ticket.history, HistoryEntry(at=now, by=PIPELINE, action="occurrence", note=incident.incident_id,
                                                 kind=HistoryKind.occurrence)]
    if severity is not ticket.severity:
        # Its own entry, outside the occurrence cap: the notifier reads it (handlers/notify.py).
        history.append(HistoryEntry(at=now, by=PIPELINE, action="severity_raised",
                                    note=f"{ticket.severity.value} -> {severity.value}",
                                    event_id=incident.incident_id, kind=HistoryKind.severity_raised,
                                    from_severity=ticket.severity, to_severity=severity))
    # All but the latest: a ticket written before the cap sheds its surplus on its next occurrence.
    dropped = set([i for i, h in enumerate(history) if h.kind is HistoryKind.occurrence][:-MAX_OCCURRENCE_ENTRIES])
    history = [h for i, h in enumerate(history) if i not in dropped]
    return ticket.model_copy(update={
        "occurrences": ticket.occurrences + 1,
        "severity": severity,
        "incident_ids": [*ticket.incident_ids, incident.incident_id][-LISTED_INCIDENTS:],
        "last_seen_at": max(ticket.last_seen_at, incident.observed_at),
        # Alarming again after its source read normal (a late copy of an older alarm changes nothing).
        "source_cleared_at": (ticket.source_cleared_at if ticket.source_cleared_at
                              and incident.observed_at < ticket.source_cleared_at else None),
        "version": ticket.version + 1,
        "history": history,
    })
