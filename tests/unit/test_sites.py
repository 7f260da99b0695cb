"""Site registration checks (handlers/sites.py): permit order in the district's days, the district's area."""
from __future__ import annotations

import json

from handlers.sites import problems
from schemas.raw import SiteRegistration
from tests.unit.conftest import DATA

SITE = json.loads((DATA / "sites" / "HW-2026-0012.json").read_text(encoding="utf-8"))


def check(config, **change) -> list[dict]:
    return problems(SiteRegistration.model_validate({**SITE, **change}), config)


def test_one_day_permits_and_mixed_forms_are_in_order(config):
    assert check(config) == []
    assert check(config, permit_from="2026-12-01", permit_until="2026-12-01") == []
    assert check(config, permit_from="2026-12-01", permit_until="2026-12-01T08:00:00+08:00") == []


def test_reversed_permits_and_places_outside_the_district(config):
    order = [{"loc": "permit_until", "msg": "permit_until must be after permit_from (a plain date's day is included)"}]
    assert check(config, permit_from="2026-12-02", permit_until="2026-12-01") == order
    # 23:00 UTC on 30 November is 07:00 on 1 December in the district: the permit day has begun.
    assert check(config, permit_from="2026-12-01", permit_until="2026-11-30T23:00:00+00:00") == []
    assert check(config, permit_from="2026-12-01", permit_until="2026-11-30T15:00:00+00:00") == order
    assert check(config, lat=22.6, lon=114.1) == [{"loc": "lat", "msg": "(22.6, 114.1) is outside 海湾街道"}]
