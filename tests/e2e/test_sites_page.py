"""The construction department registers a small site on /sites in the real browser; a noise reading at
that site at night is then ticketed against the registration (not as an unregistered site), and the
page suspends the site. Bad registrations are refused with the exact reason shown on the page."""
from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from tests.support import poll

pytestmark = pytest.mark.integration


def open_sites(pages):
    page = pages.sites()
    expect(page.locator("#main")).to_be_visible()
    return page


def fill_site(page, build, name: str, lat: float, lon: float, permit_from: str, permit_until: str) -> None:
    form = page.locator("#register")
    form.locator("input[name=name]").fill(name)
    form.locator("input[name=contractor]").fill(f"{build.unique} 装修队")
    form.locator("select[name=kind]").select_option("small_scattered")
    form.locator("input[name=lat]").fill(str(lat))
    form.locator("input[name=lon]").fill(str(lon))
    form.locator("input[name=radius_m]").fill("40")
    form.locator("input[name=permit_from]").fill(permit_from)
    form.locator("input[name=permit_until]").fill(permit_until)
    form.locator("button[type=submit]").click()


def test_a_site_registered_on_the_page_is_whitelisted_and_its_night_noise_ticketed(pipeline, pages, build):
    page = open_sites(pages)
    lat, lon = build.point("yugang")
    day = build.day.date()
    name = f"{build.unique} 店铺装修"
    fill_site(page, build, name, lat, lon, (day - timedelta(days=1)).isoformat(), (day + timedelta(days=30)).isoformat())
    expect(page.locator("#notice")).to_contain_text("已报备：")
    row = page.locator("#sites tbody tr", has_text=name)
    expect(row).to_have_attribute("data-status", "active")
    site_id = row.get_attribute("data-site-id")
    status, site = pipeline.get(f"/api/sites/{site_id}", "construction_safety")
    assert status == 200 and (site["permit_from"], site["permit_until"], site["kind"]) == (
        (day - timedelta(days=1)).isoformat(), (day + timedelta(days=30)).isoformat(), "small_scattered")

    # 23:30 on a permitted day: outside the site's work hours and over the 55 dB(A) night limit.
    event_id = f"NZ-{build.unique}"
    pipeline.send("soc.raw.construction", {"event_id": event_id, "kind": "noise", "site_id": site_id, "value": 75,
                                           "lat": lat, "lon": lon, "observed_at": build.day.replace(hour=23, minute=30).isoformat()})
    [ticket] = poll(lambda: pipeline.tickets_where(lambda t: t.source_ref == event_id), 30, "the night-noise ticket")
    assert ticket.category.value in ("site_out_of_hours", "site_noise") and name in ticket.title
    assert ticket.severity.value == "orange"

    row.locator("button[data-status=suspended]").click()
    expect(page.locator(f"#sites tbody tr[data-site-id='{site_id}']")).to_have_attribute("data-status", "suspended")
    assert pipeline.get(f"/api/sites/{site_id}", "ops_centre")[1]["status"] == "suspended"
    page.select_option("#status-filter", "active")
    expect(page.locator(f"#sites tbody tr[data-site-id='{site_id}']")).to_have_count(0)


def test_the_page_shows_why_a_registration_is_refused(pipeline, pages, build):
    page = open_sites(pages)
    lat, lon = build.point("shahe")
    fill_site(page, build, f"{build.unique} 倒序许可", lat, lon, "2026-12-10", "2026-12-01")
    expect(page.locator("#error")).to_contain_text(
        "422: invalid body — permit_until: permit_until must be after permit_from (a plain date's day is included)")
    fill_site(page, build, f"{build.unique} 区外", 22.6, 114.1, "2026-12-01", "2026-12-10")
    expect(page.locator("#error")).to_contain_text("lat: (22.6, 114.1) is outside 海湾街道")


def test_other_departments_cannot_open_the_page(pipeline, pages):
    page = pages.sites("traffic_police")
    expect(page.locator("#error")).to_contain_text("此账号不能管理工地报备")
    assert page.locator("#main").is_hidden()
