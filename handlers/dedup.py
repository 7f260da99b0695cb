"""Merge repeated reports of one problem (并单): same dedup key inside the source's window."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from schemas.config import Config
from schemas.records import Incident, Seen


def window(config: Config, source: str) -> timedelta:
    return timedelta(minutes=config.rules.dedup.window_minutes[source])


def match(seen: Sequence[Seen], incident: Incident, span: timedelta) -> Seen | None:
    """The ticket this report repeats: inside the window on either side of what the ticket has seen.
    Late readings (arriving after newer ones, as partitions and replays deliver them) belong to it
    too; if two tickets qualify, the latest."""
    for candidate in reversed(seen):
        if candidate.first_seen_at - span <= incident.observed_at <= candidate.last_seen_at + span:
            return candidate
    return None


def latest(seen: Sequence[Seen]) -> Seen | None:
    return seen[-1] if seen else None


def remember(seen: Sequence[Seen], incident: Incident, ticket_id: str) -> list[Seen]:
    """The spans with this report folded into its ticket's span (a new ticket is added), ordered by
    the latest observation."""
    spans = {s.ticket_id: s for s in seen}
    known = spans.get(ticket_id)
    if known is None:
        spans[ticket_id] = Seen(ticket_id=ticket_id, first_seen_at=incident.observed_at,
                                last_seen_at=incident.observed_at, last_received_at=incident.received_at)
    else:
        spans[ticket_id] = known.model_copy(update={
            "first_seen_at": min(known.first_seen_at, incident.observed_at),
            "last_seen_at": max(known.last_seen_at, incident.observed_at),
            "last_received_at": max(known.last_received_at, incident.received_at)})
    return sorted(spans.values(), key=lambda s: (s.last_seen_at, s.first_seen_at, s.ticket_id))


def forget_expired(seen: Sequence[Seen], now: datetime, span: timedelta) -> list[Seen]:
    """Dedup memory ends with its window: a span that neither a new observation nor a late
    delivery has extended for a whole window. `now` is the input's own time, so a replay forgets
    exactly what the first run forgot."""
    return [s for s in seen if max(s.last_seen_at, s.last_received_at) + span >= now]
