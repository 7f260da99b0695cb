"""Merge repeated reports of one problem (并单): same dedup key inside the source's window."""
from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import AwareDatetime, BaseModel, ConfigDict

from schemas.config import Config
from schemas.records import Incident


class DedupEntry(BaseModel):
    """What the triage table remembers per dedup key."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    ticket_id: str
    opened_at: AwareDatetime
    first_seen_at: AwareDatetime
    last_seen_at: AwareDatetime


def window(config: Config, source: str) -> timedelta:
    return timedelta(minutes=config.rules.dedup.window_minutes[source])


def is_repeat(entry: DedupEntry | None, incident: Incident, span: timedelta) -> bool:
    """Inside the window on either side of what the ticket has seen: late readings (arriving after
    newer ones, as partitions and replays deliver them) belong to it too, old ones do not."""
    if entry is None:
        return False
    return entry.first_seen_at - span <= incident.observed_at <= entry.last_seen_at + span


def is_newer(entry: DedupEntry | None, incident: Incident) -> bool:
    return entry is None or incident.observed_at > entry.last_seen_at


def remember(entry: DedupEntry | None, incident: Incident, ticket_id: str, now: datetime) -> DedupEntry:
    if entry is not None and entry.ticket_id == ticket_id:
        return entry.model_copy(update={"first_seen_at": min(entry.first_seen_at, incident.observed_at),
                                        "last_seen_at": max(entry.last_seen_at, incident.observed_at)})
    return DedupEntry(ticket_id=ticket_id, opened_at=now, first_seen_at=incident.observed_at,
                      last_seen_at=incident.observed_at)
