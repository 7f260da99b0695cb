"""The inbox on a phone: at 390x844 in the real Chromium it lists a department's tickets without
sideways scrolling, and accepts one and resolves it with a photo through the form's camera input; it is installable (a manifest, and a service worker that
serves the shell when there is no connection); actions taken offline wait in a queue on the phone, shown as
waiting, and are sent when the connection returns: each applied once, one history entry each."""
from __future__ import annotations

import io
import json
import urllib.request

from PIL import Image

import pytest
from playwright.sync_api import expect

from tests.integration.test_api import open_ticket
from tests.support import poll

pytestmark = pytest.mark.integration

PHONE = {"width": 390, "height": 844}


def phone_inbox(pages, pipeline, department: str = "traffic_police"):
    page = pages._page(PHONE)
    page.goto(f"{pipeline.worker.url}/inbox")
    pages.sign_in(page, pages.user(department, name="李工"))
    expect(page.locator("#conn")).to_have_attribute("data-state", "connected", timeout=15_000)
    return page


def act(page, ticket_id: str, action: str, text: str, photo: bytes | None = None) -> None:
    card = page.locator(f'#cards > li[data-ticket-id="{ticket_id}"]')
    card.locator(f'.buttons button[data-action="{action}"]').click()
    card.locator("form textarea").fill(text)
    if photo is not None:
        card.locator("form input[type=file]").set_input_files(
            files=[{"name": "after.jpg", "mimeType": "image/jpeg", "buffer": photo}])
    card.locator('form button[data-action="submit"]').click()


def jpeg() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (640, 480), (40, 120, 200)).save(out, "JPEG")
    return out.getvalue()


def history(pipeline, ticket_id: str, kind: str) -> list[dict]:
    status, ticket = pipeline.get(f"/api/tickets/{ticket_id}", "ops_centre")
    assert status == 200, ticket
    return [h for h in ticket["history"] if h["kind"] == kind]


def test_the_phone_inbox_lists_accepts_and_resolves(pipeline, pages, build):
    ticket_id = open_ticket(pipeline, build)["ticket_id"]
    page = phone_inbox(pages, pipeline)
    card = page.locator(f'#cards > li[data-ticket-id="{ticket_id}"]')
    expect(card).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    act(page, ticket_id, "accept", "已到场")
    expect(card).to_have_attribute("data-status", "accepted")
    resolve = card.locator('.buttons button[data-action="resolve"]')
    resolve.click()
    camera = card.locator("form input[type=file]")
    assert (camera.get_attribute("capture"), camera.get_attribute("accept")) == ("environment", "image/jpeg,image/png")
    card.locator('form button[data-action="cancel"]').click()
    act(page, ticket_id, "resolve", "事故车辆已拖离", photo=jpeg())
    expect(card).to_have_attribute("data-status", "resolved")
    assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
    assert [len(history(pipeline, ticket_id, k)) for k in ("accept", "evidence", "resolve")] == [1, 1, 1]
    status, photos = pipeline.get(f"/api/tickets/{ticket_id}/evidence", "ops_centre")
    assert status == 200, photos
    [photo] = photos["items"]
    assert (photo["stage"], photo["note"], photo["width"]) == ("after", "事故车辆已拖离", 640)


def test_a_category_resolved_only_with_a_photo_asks_for_it_on_the_form(pipeline, pages, build):
    # routing.yaml resolves waterlogging only with a photo after the work: the form says so and will not send
    # the resolve without one (the server would refuse it with a 409).
    station = f"JS-{build.unique}"
    pipeline.send("soc.raw.flood", build.flood(station_id=station, kind="waterlogging", value=20,
                                                warning_level=None, danger_level=None))
    [ticket] = poll(lambda: pipeline.tickets_where(lambda t: t.source_ref.startswith(station)), 30,
                    "the waterlogging ticket")
    page = phone_inbox(pages, pipeline, ticket.department)
    card = page.locator(f'#cards > li[data-ticket-id="{ticket.ticket_id}"]')
    act(page, ticket.ticket_id, "accept", "已到场")
    expect(card).to_have_attribute("data-status", "accepted")
    card.locator('.buttons button[data-action="resolve"]').click()
    camera = card.locator("form input[type=file]")
    expect(camera).to_have_attribute("required", "")
    expect(card.locator("form")).to_contain_text("此类工单必须上传")
    card.locator("form textarea").fill("积水已排除")
    card.locator('form button[data-action="submit"]').click()
    assert camera.evaluate("input => input.validity.valueMissing")
    expect(card.locator("form")).to_be_visible()
    assert history(pipeline, ticket.ticket_id, "resolve") == []


def test_the_inbox_is_installable_with_a_manifest_and_a_service_worker(pipeline):
    status, manifest, headers = pipeline.raw_request("GET", "/static/inbox.webmanifest")
    assert status == 200 and headers["Content-Type"].startswith("application/manifest+json"), headers
    assert (manifest["start_url"], manifest["display"]) == ("/inbox", "standalone") and manifest["icons"]
    for path, kind in (("/inbox-sw.js", "text/javascript"), ("/static/inbox-icon.svg", "image/svg+xml")):
        with urllib.request.urlopen(pipeline.worker.url + path, timeout=10) as response:
            assert response.status == 200 and response.headers["Content-Type"].startswith(kind), (path, response.headers)


def test_actions_taken_offline_wait_on_the_phone_and_are_applied_once_when_online(pipeline, pages, build):
    first = open_ticket(pipeline, build, road="望海路")["ticket_id"]
    second = open_ticket(pipeline, build, community="yugang", road="渔港路")["ticket_id"]
    page = phone_inbox(pages, pipeline)
    for ticket_id in (first, second):
        expect(page.locator(f'#cards > li[data-ticket-id="{ticket_id}"]')).to_be_visible()
    # The service worker has taken the page: from now on the shell opens without a connection.
    poll(lambda: page.evaluate("Boolean(navigator.serviceWorker.controller)"), 15, "the service worker", 0.1)

    page.context.set_offline(True)
    act(page, first, "accept", "已到场，电话 13800138000")
    act(page, second, "accept", "已到场")
    outbox = page.locator("#outbox-list > li")
    expect(outbox).to_have_count(2)
    expect(page.locator("#outbox")).to_be_visible()
    for ticket_id in (first, second):
        card = page.locator(f'#cards > li[data-ticket-id="{ticket_id}"]')
        expect(card.locator(".waiting-mark")).to_contain_text("签收")
        expect(card.locator(".buttons button")).to_have_count(0)
    queued = page.evaluate("JSON.parse(localStorage.getItem('soc.inbox.outbox'))")
    assert [q["ticket_id"] for q in queued] == [first, second] and len({q["client_id"] for q in queued}) == 2
    assert "13800138000" not in json.dumps(queued, ensure_ascii=False)   # masked as the server would keep it
    assert history(pipeline, first, "accept") == [] and history(pipeline, second, "accept") == []

    # Reopened without a connection: the shell comes from the service worker, and the queue is still there.
    page.reload()
    expect(page.locator("#conn")).to_be_attached()
    assert page.title() == "部门工单"

    page.context.set_offline(False)
    expect(page.locator("#outbox")).to_be_hidden(timeout=20_000)
    for ticket_id in (first, second):
        expect(page.locator(f'#cards > li[data-ticket-id="{ticket_id}"]')).to_have_attribute("data-status", "accepted")
        assert len(history(pipeline, ticket_id, "accept")) == 1
    assert page.evaluate("localStorage.getItem('soc.inbox.outbox')") is None


def test_the_one_who_verifies_sees_the_photos_before_and_after_side_by_side(pipeline, pages, build):
    from tests.integration.test_evidence import upload

    ticket_id = open_ticket(pipeline, build)["ticket_id"]
    status, _ = upload(pipeline, ticket_id, "traffic_police", jpeg(), stage="before", note="到场时")[:2]
    assert status == 201
    assert pipeline.post(f"/api/tickets/{ticket_id}/accept", "traffic_police", {})[0] == 200
    status, _ = upload(pipeline, ticket_id, "traffic_police", jpeg(), stage="after", note="已清理")[:2]
    assert status == 201
    assert pipeline.post(f"/api/tickets/{ticket_id}/resolve", "traffic_police", {"resolution": "已清理"})[0] == 200

    page = pages.inbox("ops_centre", name="王值班", role="duty_officer")
    page.goto(f"{pipeline.worker.url}/inbox#ticket={ticket_id}")  # as the notification's link opens it
    card = page.locator(f'li.card[data-ticket-id="{ticket_id}"]')
    expect(card).to_have_attribute("data-status", "resolved", timeout=15_000)
    before, after = card.locator('.photo-col[data-stage="before"] img'), card.locator('.photo-col[data-stage="after"] img')
    expect(before).to_have_count(1)
    expect(after).to_have_count(1)
    for image in (before, after):  # drawn from the image the API served with the officer's session
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle(), timeout=15_000)
    assert before.bounding_box()["x"] < after.bounding_box()["x"]  # before on the left
    assert card.locator('.buttons button[data-action="verify"]').count() == 1
