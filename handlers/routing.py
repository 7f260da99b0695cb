"""Category and community -> responsible department (派遣), plus who else must see it."""
from __future__ import annotations

from dataclasses import dataclass

from schemas.config import Config
from schemas.enums import Category, Severity


@dataclass(frozen=True)
class Route:
    department: str
    watchers: tuple[str, ...]
    out_of_jurisdiction: bool


def workstation_of(config: Config, community: str) -> str:
    return next(d for d, dept in config.district.departments.items() if dept.community == community)


def route(config: Config, category: Category, severity: Severity, community: str | None) -> Route:
    routing = config.routing
    if community is None:
        department, outside = routing.out_of_jurisdiction, True
    else:
        outside = False
        override = routing.community_overrides.get(community, {}).get(category)
        rule = routing.categories[category]
        if override is not None:
            department = override
        elif rule.to_workstation:
            department = workstation_of(config, community)
        else:
            department = rule.department
    return Route(department=department, watchers=red_watchers(config, department, severity),
                 out_of_jurisdiction=outside)


def red_watchers(config: Config, department: str, severity: Severity) -> tuple[str, ...]:
    """Who else must see a ticket of this severity held by `department` (red_also for red)."""
    if severity is not Severity.red:
        return ()
    return tuple(d for d in config.routing.red_also if d != department)
