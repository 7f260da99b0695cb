"""Per-device heartbeats (rules.yaml `heartbeats`): which devices are silent, the incident a silent device
raises and the command its recovery sends. No I/O.

Every report of a device that reports periodically is its heartbeat (handlers/<source>.py `device`); the
parse stage keeps each device's last one in Redis. A device silent for `every` x `missing` raises one
`*_device_offline` incident, named and timed by its last heartbeat, so every worker and every tick builds
the same one and the ticket step counts it once; the device's next heartbeat sends `recover` to the
ticket that incident touched. A device silent again while its ticket is open adds an occurrence to it
(the ticket step's dedup), not a second ticket.
"""
from __future__ import annotations

from datetime import datetime, timezone

from handlers.geo import community_at
from handlers.intake import digest
from handlers.privacy import never_masked
from handlers.tickets import PIPELINE, ticket_id_for
from schemas.config import Config, Heartbeat
from schemas.enums import Category, Severity
from schemas.records import Incident, TicketAction, TicketEvent

OFFLINE = {"flood": Category.flood_device_offline, "construction": Category.site_device_offline}
LABEL = {"flood": "三防设备", "construction": "工地设备"}


def tracked(config: Config, kind: str, device: str) -> Heartbeat | None:
    rule = config.rules.heartbeats.kinds.get(kind)
    return None if rule is None or device in config.rules.heartbeats.retired else rule


def offline_incident(config: Config, kind: str, device: str, lat: float, lon: float, last_heard: float) -> Incident:
    """The incident of a device silent since its heartbeat at `last_heard` (POSIX seconds)."""
    source, _, what = kind.partition(".")
    rule = config.rules.heartbeats.kinds[kind]
    heard_at = datetime.fromtimestamp(last_heard, timezone.utc)
    silent_at = heard_at + rule.silent_after
    return Incident(
        incident_id=never_masked(f"{source[:4]}-{digest('offline', kind, device, heard_at.isoformat())}"),
        source=source, category=OFFLINE[source], subcategory=what, severity=Severity.blue,
        title=f"{device} {LABEL[source]}离线 device offline",
        description=f"无数据 no data since {heard_at.astimezone(config.district.tz).isoformat(timespec='seconds')} "
                    f"(every {rule.every}, {rule.missing} missed)",
        lat=lat, lon=lon, community=community_at(config.district.communities, lat, lon),
        observed_at=silent_at, received_at=silent_at, dedup_key=f"{source}:{OFFLINE[source].value}:{device}",
        source_ref=f"{device}@{heard_at.isoformat()}", details={"device": device, "kind": what,
                                                                  "last_heard_at": heard_at.isoformat()})


def all_clear_event(config: Config, kind: str, dedup_key: str, alarm_at: float, calm: list[float]) -> TicketEvent | None:
    """The hint for the ticket on `dedup_key` once the device's readings after its last alarm (at
    `alarm_at`) are enough and span enough (rules.yaml all_clear); None until then. Times are the
    readings' own, so every tick and worker builds the same command."""
    rule = config.rules.all_clear.get(kind)
    if rule is None or len(calm) < rule.readings or calm[-1] - calm[0] < rule.span.total_seconds():
        return None
    at = datetime.fromtimestamp(calm[-1], timezone.utc)
    return TicketEvent(event_id=f"clear-{dedup_key}-{int(alarm_at)}", ticket_id="", action=TicketAction.clear,
                       by=PIPELINE, actor=PIPELINE, at=at,
                       note=f"数据恢复正常 source back to normal: {len(calm)} readings below every threshold since "
                            f"{datetime.fromtimestamp(calm[0], timezone.utc).astimezone(config.district.tz):%H:%M}")


def recover_event(offline: Incident, heard: float) -> TicketEvent:
    """The device reported again at `heard`: a history entry on the ticket its silence touched."""
    at = datetime.fromtimestamp(heard, timezone.utc)
    return TicketEvent(event_id=f"recover-{offline.incident_id}", ticket_id=ticket_id_for(offline),
                       action=TicketAction.recover, by=PIPELINE, actor=PIPELINE, at=at,
                       incident_id=offline.incident_id, note=f"数据恢复 data resumed at {at.isoformat()}")
