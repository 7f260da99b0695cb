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
    watchers = tuple(d for d in routing.red_also if d != department) if severity is Severity.red else ()
    return Route(department=department, watchers=watchers, out_of_jurisdiction=outside)
