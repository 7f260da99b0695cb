"""The construction department registers a small site on /sites in the real browser; a noise reading at
that site at night is then ticketed against the registration (not as an unregistered site), and the
page suspends the site. Bad registrations are refused with the exact reason shown on the page. Each
site reads as its permit today (未生效 / 有效 / 已过期), dates are YYYY-MM-DD whatever the browser's
locale, and the place is picked with a click on the page's map."""
from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from handlers.geo import contains
from tests.support import CONFIG, poll

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


def register(pipeline, build, suffix: str, permit_from: str, permit_until: str, **change) -> str:
    lat, lon = build.point("shahe")
    status, body = pipeline.post("/api/sites", "construction_safety", {
        "site_id": f"P-{build.unique}-{suffix}", "name": f"{build.unique} {suffix} 门面装修", "contractor": "沙河装饰",
        "kind": "small_scattered", "lat": lat, "lon": lon, "radius_m": 30, "permit_from": permit_from,
        "permit_until": permit_until, "work_hours": "08:00-18:00", **change})
    assert status == 201, body
    return body["site_id"]


def test_each_site_reads_as_its_permit_today_with_iso_dates(pipeline, pages, build):
    ended = register(pipeline, build, "ended", "2020-06-01", "2020-11-21")
    running = register(pipeline, build, "running", "2020-06-01", "2099-12-31")
    later = register(pipeline, build, "later", "2099-01-01", "2099-12-31")
    paused = register(pipeline, build, "paused", "2020-06-01", "2020-11-21", status="suspended")
    page = open_sites(pages)

    def the_row(site_id):
        return page.locator(f"#sites tbody tr[data-site-id='{site_id}']")

    expect(the_row(ended).locator(".status")).to_have_text("已过期")
    expect(the_row(ended)).to_have_attribute("data-permit", "expired")
    expect(the_row(ended).locator("td").nth(3)).to_have_text("2020-06-01 ～ 2020-11-21")
    expect(the_row(running).locator(".status")).to_have_text("有效")
    expect(the_row(later).locator(".status")).to_have_text("未生效")
    expect(the_row(paused).locator(".status")).to_have_text("暂停（已过期）")

    # Plain text fields in YYYY-MM-DD, not the browser's date picker in the OS locale; today is filled in.
    form = page.locator("#register")
    for name in ("permit_from", "permit_until"):
        assert form.locator(f"input[name={name}]").get_attribute("type") in (None, "text")
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", form.locator("input[name=permit_from]").input_value())
    form.locator("input[name=permit_until]").fill("12/31/2026")
    assert not form.locator("input[name=permit_until]").evaluate("input => input.checkValidity()")


def test_the_place_is_picked_on_the_map_and_can_still_be_typed(pipeline, pages, build, artifacts):
    page = open_sites(pages)
    polygon = CONFIG.district.communities["xingang"].polygon
    lons, lats = [p[0] for p in polygon], [p[1] for p in polygon]
    # A click at the middle of 新港社区 as drawn: the form gets that point's latitude and longitude.
    page.locator('#site-map polygon[data-community="xingang"]').click()
    form = page.locator("#register")
    lat, lon = float(form.locator("input[name=lat]").input_value()), float(form.locator("input[name=lon]").input_value())
    assert abs(lat - (min(lats) + max(lats)) / 2) < 0.0005 and abs(lon - (min(lons) + max(lons)) / 2) < 0.0005
    expect(page.locator("#site-map .pick")).to_have_count(1)
    picked_x = float(page.locator("#site-map .pick").get_attribute("cx"))
    page.screenshot(path=str(artifacts / "sites.png"))

    name = f"{build.unique} 地图选点装修"
    form.locator("input[name=name]").fill(name)
    form.locator("input[name=contractor]").fill(f"{build.unique} 装修队")
    form.locator("input[name=permit_until]").fill("2099-12-31")
    form.locator("button[type=submit]").click()
    expect(page.locator("#notice")).to_contain_text("已报备：")
    site_id = page.locator("#sites tbody tr", has_text=name).get_attribute("data-site-id")
    site = pipeline.get(f"/api/sites/{site_id}", "construction_safety")[1]
    assert (site["lat"], site["lon"]) == (lat, lon) and contains(polygon, lon, lat)
    expect(page.locator(f'#site-map .site[data-site-id="{site_id}"]')).to_have_count(1)

    # Typed by hand, the marker follows: further east is further right.
    form.locator("input[name=lat]").fill(str(lat))
    form.locator("input[name=lon]").fill(str(round(lon + 0.01, 6)))
    poll(lambda: float(page.locator("#site-map .pick").get_attribute("cx")) > picked_x, 5, "the marker moving east")
