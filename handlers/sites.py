"""Site registration (小散工程报备 "一站通") by the construction department: the checks a registration needs
beyond its own fields, with the district's geography and time zone. No I/O."""
from __future__ import annotations

from datetime import datetime, tzinfo

from handlers.construction import permit_bounds
from handlers.geo import community_at
from schemas.config import Config
from schemas.raw import PermitState, SiteRegistration


def problems(site: SiteRegistration, config: Config) -> list[dict[str, str]]:
    """[{"loc", "msg"}] like the API's other validation errors; empty when the registration can be published."""
    found = []
    start, until = permit_bounds(site, config.district.tz)
    if until <= start:
        found.append({"loc": "permit_until", "msg": "permit_until must be after permit_from (a plain date's day is included)"})
    if community_at(config.district.communities, site.lat, site.lon) is None:
        found.append({"loc": "lat", "msg": f"({site.lat:g}, {site.lon:g}) is outside {config.district.name}"})
    return found


def permit_state(site: SiteRegistration, now: datetime, tz: tzinfo) -> PermitState:
    """Whether the permit has begun and not ended at `now`; a plain until-date runs to the end of its day
    in the district's time zone."""
    start, until = permit_bounds(site, tz)
    if now < start:
        return PermitState.not_yet_valid
    return PermitState.expired if now > until else PermitState.valid
