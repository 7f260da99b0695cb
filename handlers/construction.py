"""Construction-site events checked against the whitelist (在建工地白名单, 小散工程报备)."""
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, time, timedelta, tzinfo

from handlers.base import Classification, Context, Heard
from handlers.geo import distance_m, grid_cell, place_name
from handlers.severity import grade
from schemas.config import ConstructionLimits, parse_span
from schemas.enums import SEVERITY_RANK, Category
from schemas.raw import SiteEvent, SiteEventKind, SiteRegistration, SiteStatus

SOURCE = "construction"
MODEL = SiteEvent

LABEL = {
    Category.site_unregistered: "未报备施工",
    Category.site_out_of_hours: "超时施工",
    Category.site_permit_invalid: "许可失效施工",
    Category.site_safety: "施工安全隐患",
    Category.site_noise: "施工噪声超标",
    Category.site_dust: "施工扬尘超标",
}
# When two findings are equally severe, the first listed names the ticket.
PRIORITY = [Category.site_safety, Category.site_permit_invalid, Category.site_unregistered,
            Category.site_out_of_hours, Category.site_noise, Category.site_dust]
SAFETY_KINDS = {SiteEventKind.no_helmet, SiteEventKind.unsafe_scaffold}


def parse(data: dict) -> SiteEvent:
    return SiteEvent.model_validate(data)


def device(event: SiteEvent, ctx: Context) -> Heard | None:
    """A site's noise and dust sensors report periodically, by their camera or sensor id."""
    if event.camera_id is None:
        return None
    return Heard(f"construction.{event.kind.value}", event.camera_id, event.lat, event.lon, ctx.received_at)


def find_site(event: SiteEvent, sites: Mapping[str, SiteRegistration]) -> SiteRegistration | None:
    """The registration covering the event: the named site if it is registered, else the nearest
    registration whose radius contains the point, active ones first."""
    if event.site_id and event.site_id in sites:
        return sites[event.site_id]
    covering = [
        (site.status is not SiteStatus.active, distance_m(event.lat, event.lon, site.lat, site.lon), site.site_id, site)
        for site in sites.values()
        if distance_m(event.lat, event.lon, site.lat, site.lon) <= site.radius_m
    ]
    return min(covering)[3] if covering else None


def permit_bounds(site: SiteRegistration, tz: tzinfo) -> tuple[datetime, datetime]:
    """The permit's first and last valid instants. A plain date is a day in the district's time zone,
    and the until-day is included to its end."""
    start, until = site.permit_from, site.permit_until
    if not isinstance(start, datetime):
        start = datetime.combine(start, time(0), tz)
    if not isinstance(until, datetime):
        until = datetime.combine(until + timedelta(days=1), time(0), tz) - timedelta(microseconds=1)
    return start, until


def in_spans(spans: str, moment: time) -> bool:
    for span in spans.split(","):
        start, end = parse_span(span)
        if (start <= moment < end) if start <= end else (moment >= start or moment < end):
            return True
    return False


def is_night(limits: ConstructionLimits, moment: time) -> bool:
    return not in_spans(f"{limits.day_starts}-{limits.night_starts}", moment)


def findings(event: SiteEvent, site: SiteRegistration | None, local: datetime,
             limits: ConstructionLimits) -> dict[Category, tuple[str, dict[str, float | None]]]:
    """Every rule the event breaks: category -> (subcategory, measures)."""
    night = is_night(limits, local.time())
    base = {"night": float(night)}
    found: dict[Category, tuple[str, dict[str, float | None]]] = {}
    if event.kind in SAFETY_KINDS:
        found[Category.site_safety] = (event.kind.value, base)
    if event.kind is SiteEventKind.noise:
        limit = limits.noise_night_db if night else limits.noise_day_db
        if event.value > limit:
            found[Category.site_noise] = ("night_noise" if night else "day_noise",
                                          {**base, "over_limit_db": event.value - limit})
    if event.kind is SiteEventKind.dust and event.value > limits.pm10_ugm3:
        found[Category.site_dust] = ("pm10", {**base, "pm10_ratio": event.value / limits.pm10_ugm3})
    if site is None:
        found[Category.site_unregistered] = ("no_registration", base)
        return found
    start, until = permit_bounds(site, local.tzinfo)
    if site.status is not SiteStatus.active:
        found[Category.site_permit_invalid] = (site.status.value, base)
    elif not start <= local <= until:
        expired_days = (local - until).total_seconds() / 86400
        found[Category.site_permit_invalid] = (
            "expired" if local > until else "not_yet_valid",
            {**base, "permit_expired_days": max(expired_days, 0.0)},
        )
    elif not in_spans(site.work_hours, local.time()):
        found[Category.site_out_of_hours] = ("outside_work_hours", base)
    return found


def classify(event: SiteEvent, ctx: Context) -> Classification | None:
    """None when the event breaks no rule: registered work, in hours, within limits."""
    config = ctx.config
    local = event.observed_at.astimezone(config.district.tz)
    site = find_site(event, ctx.sites)
    found = findings(event, site, local, config.rules.construction_limits)
    if not found:
        return None
    graded = {cat: (sub, grade(config.rules.construction[cat.value], measures))
              for cat, (sub, measures) in found.items()}
    category = max(graded, key=lambda c: (SEVERITY_RANK[graded[c][1]], -PRIORITY.index(c)))
    subcategory, severity = graded[category]
    details = {"kind": event.kind.value, "findings": sorted(c.value for c in found),
               "local_time": local.strftime("%H:%M")}
    if event.value is not None:
        details["value"] = event.value
    if event.camera_id:
        details["camera_id"] = event.camera_id
    if site is not None:
        details.update(site_id=site.site_id, site_name=site.name, contractor=site.contractor,
                       site_status=site.status.value, work_hours=site.work_hours)
    # A site is named by its registration; a spot off the whitelist as a person would say it.
    place = site.name if site else place_name(config, event.lat, event.lon)
    return Classification(
        category=category,
        subcategory=subcategory,
        severity=severity,
        title=f"{place} {LABEL[category]}",
        source_ref=event.event_id,
        identity=site.site_id if site else grid_cell(event.lat, event.lon, config.rules.dedup.grid_m),
        observed_at=event.observed_at,
        lat=event.lat,
        lon=event.lon,
        details=details,
    )
