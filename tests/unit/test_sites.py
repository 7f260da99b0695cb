"""Site registration checks (handlers/sites.py): permit order in the district's days, the district's area, and
whether a permit has begun or ended (未生效 / 有效 / 已过期), by the district's days."""
from __future__ import annotations

import json
from datetime import datetime

from handlers.sites import permit_state, problems
from schemas.raw import PermitState, SiteRegistration
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


def state(config, now: str, **change) -> PermitState:
    site = SiteRegistration.model_validate({**SITE, **change})
    return permit_state(site, datetime.fromisoformat(now), config.district.tz)


def test_a_permit_that_ended_yesterday_has_expired(config):
    # The permit of the report: it ended 2026-11-21 and was still shown as valid on 6 December.
    assert state(config, "2026-12-06T10:00:00+08:00", permit_from="2026-06-01", permit_until="2026-11-21") \
        is PermitState.expired


def test_the_last_day_of_a_permit_counts_to_its_end_in_the_districts_time_zone(config):
    permit = {"permit_from": "2026-11-01", "permit_until": "2026-11-21"}
    assert state(config, "2026-11-21T23:59:59+08:00", **permit) is PermitState.valid
    # 16:30 UTC on the 21st is 00:30 on the 22nd in the district: expired, though still the 21st in UTC.
    assert state(config, "2026-11-21T16:30:00+00:00", **permit) is PermitState.expired


def test_a_permit_from_a_later_day_is_not_yet_valid_until_that_day_begins(config):
    permit = {"permit_from": "2026-12-10", "permit_until": "2026-12-31"}
    assert state(config, "2026-12-09T23:59:00+08:00", **permit) is PermitState.not_yet_valid
    assert state(config, "2026-12-09T16:00:00+00:00", **permit) is PermitState.valid  # 00:00 on the 10th


def test_a_permit_to_a_time_ends_at_that_time(config):
    permit = {"permit_from": "2026-12-01", "permit_until": "2026-12-06T18:00:00+08:00"}
    assert state(config, "2026-12-06T17:59:00+08:00", **permit) is PermitState.valid
    assert state(config, "2026-12-06T18:01:00+08:00", **permit) is PermitState.expired
