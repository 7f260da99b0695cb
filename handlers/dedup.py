"""Merge repeated reports of one problem (并单): same dedup key inside the source's window."""
from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import AwareDatetime, BaseModel, ConfigDict

from schemas.config import Config
from schemas.records import Incident

# Tickets remembered per key. More than one: a late report of an earlier problem on the same spot
# (a replayed partition, a slow source) must still find its own ticket after a newer one opened.
TICKETS_PER_KEY = 8


class Seen(BaseModel):
    """One ticket on a key and the span of observations it has merged."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    ticket_id: str
    opened_at: AwareDatetime
    first_seen_at: AwareDatetime
    last_seen_at: AwareDatetime


class DedupEntry(BaseModel):
    """What the triage table remembers per dedup key: its latest tickets, oldest observation first."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    tickets: tuple[Seen, ...]


def window(config: Config, source: str) -> timedelta:
    return timedelta(minutes=config.rules.dedup.window_minutes[source])


def match(entry: DedupEntry | None, incident: Incident, span: timedelta) -> Seen | None:
    """The ticket this report repeats: inside the window on either side of what the ticket has seen.
    Late readings (arriving after newer ones, as partitions and replays deliver them) belong to it
    too; if two tickets qualify, the latest."""
    if entry is None:
        return None
    for seen in reversed(entry.tickets):
        if seen.first_seen_at - span <= incident.observed_at <= seen.last_seen_at + span:
            return seen
    return None


def latest(entry: DedupEntry | None) -> Seen | None:
    return entry.tickets[-1] if entry else None


def remember(entry: DedupEntry | None, incident: Incident, ticket_id: str, now: datetime) -> DedupEntry:
    """The entry with this report folded into its ticket's span (a new ticket is added), the
    oldest tickets dropped beyond TICKETS_PER_KEY."""
    tickets = {seen.ticket_id: seen for seen in (entry.tickets if entry else ())}
    known = tickets.get(ticket_id)
    if known is None:
        tickets[ticket_id] = Seen(ticket_id=ticket_id, opened_at=now, first_seen_at=incident.observed_at,
                                  last_seen_at=incident.observed_at)
    else:
        tickets[ticket_id] = known.model_copy(update={
            "first_seen_at": min(known.first_seen_at, incident.observed_at),
            "last_seen_at": max(known.last_seen_at, incident.observed_at)})
    ordered = sorted(tickets.values(), key=lambda seen: (seen.last_seen_at, seen.opened_at))
    return DedupEntry(tickets=tuple(ordered[-TICKETS_PER_KEY:]))
