"""The pages sign in with people's accounts in the real headless Chromium against the real stack:
a duty officer signs in on the board with a user name and password and the history names them; a wrong
password, a slowed sign-in and a disabled account are refused with the server's words; signing out ends the session
on the server; a reload keeps the person signed in (the cookie, and the CSRF token read again); a community
workstation's board shows its community only; each role is offered only its own actions; a session that ends
while the page is open brings the sign-in form back."""
from __future__ import annotations

from datetime import timedelta, timezone

import pytest
from playwright.sync_api import expect

from schemas.records import HistoryKind
from tests.support import TEST_PASSWORD, poll

pytestmark = pytest.mark.integration

CST = timezone(timedelta(hours=8))


def row(board, ticket_id: str):
    return board.locator(f'#alerts > li[data-ticket-id="{ticket_id}"]')


def card(inbox, ticket_id: str):
    return inbox.locator(f'#cards > li[data-ticket-id="{ticket_id}"]')


def traffic_ticket(pipeline, build, **fields):
    event = build.traffic(**fields)
    pipeline.send("soc.raw.traffic", event)
    [ticket] = poll(lambda: pipeline.tickets_where(lambda t: t.source_ref == event["event_id"]), 30, "the ticket")
    return ticket


def resolved_ticket(pipeline, build):
    """A traffic ticket the traffic police accepted and resolved (with its service token)."""
    ticket = traffic_ticket(pipeline, build)
    for action, body in [("accept", {}), ("resolve", {"resolution": "已疏导"})]:
        status, answer = pipeline.post(f"/api/tickets/{ticket.ticket_id}/{action}", ticket.department, body)
        assert status == 200, answer
    return ticket


def session_cookie(page) -> str:
    [cookie] = [c for c in page.context.cookies() if c["name"] == "soc_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    return f"soc_session={cookie['value']}"


def test_a_duty_officer_signs_in_on_the_board_and_the_history_names_them(pipeline, pages, build):
    ticket = resolved_ticket(pipeline, build)
    officer = pages.user("ops_centre", name=f"赵值班{build.unique}")
    board = pages.board(user=officer)
    assert board.locator("#by").count() == 0   # no name to type: the sign-in says who it is
    who = board.locator("#who")
    expect(who).to_have_text(f"赵值班{build.unique} · 街道智慧运行中心 · 值班员")
    expect(who).to_have_attribute("data-user-id", officer)
    expect(who).to_have_attribute("data-role", "duty_officer")
    expect(board.locator("#signout")).to_be_visible()
    the_row = row(board, ticket.ticket_id)
    expect(the_row).to_have_attribute("data-status", "resolved", timeout=10_000)

    the_row.locator('button[data-action="verify"]').click()
    expect(the_row).to_have_attribute("data-status", "closed", timeout=5000)
    expect(board.locator("#error")).to_be_hidden()
    last = pipeline.ticket(ticket.ticket_id).history[-1]
    assert last.user is not None and (last.user.user_id, last.user.role.value) == (officer, "duty_officer")
    assert last.by.startswith(f"赵值班{build.unique}")
    # The API's history says the same.
    status, body = pipeline.get(f"/api/tickets/{ticket.ticket_id}", "ops_centre")
    assert status == 200 and body["history"][-1]["user"]["user_id"] == officer


def test_a_wrong_password_a_slowed_sign_in_and_a_disabled_account_are_refused_with_the_servers_words(pipeline, pages):
    page = pages._page({"width": 1920, "height": 1080})
    page.goto(f"{pipeline.worker.url}/")
    expect(page.locator("#signin-form")).to_be_visible()
    error = page.locator("#error")

    def refused(user: str, password: str | None, words: str) -> None:
        if error.is_visible():
            page.click("#error .close")
        pages.sign_in(page, user, password)
        expect(error).to_be_visible()
        expect(error).to_contain_text(words)
        expect(page.locator("#main")).to_be_hidden()
        expect(page.locator("#signin-form button[type=submit]")).to_be_enabled()

    user = pages.user("ops_centre", name="钱值班")
    refused(user, "not the password", "wrong user name or password")
    expect(page.locator("#password")).to_have_value("")   # the password is not kept
    expect(page.locator("#user")).to_have_value(user)     # the name is, to try again
    # The right password then signs in, and clears the error.
    pages.sign_in(page, user)
    expect(page.locator("#conn")).to_have_attribute("data-state", "connected", timeout=15_000)
    expect(error).to_be_hidden()
    page.click("#signout")
    expect(page.locator("#signin-form")).to_be_visible()

    # After five failures from this address the next try waits 30 s (429), the right password too.
    slowed = pages.user("ops_centre")
    for _ in range(5):
        refused(slowed, "still not the password", "wrong user name or password")
    refused(slowed, None, "too many failed sign-ins to this account from this address: try again in")

    # A disabled account (403).
    disabled = pages.user("traffic_police")
    pipeline.accounts(lambda store: store.disable(disabled))
    refused(disabled, None, "this account is disabled")


def test_signing_out_returns_to_the_form_and_ends_the_session(pipeline, pages):
    board = pages.board()
    cookie = session_cookie(board)
    status, body, _ = pipeline.raw_request("GET", "/api/district", headers={"Cookie": cookie})
    assert status == 200 and body["user"]["role"] == "duty_officer"

    board.click("#signout")
    expect(board.locator("#signin-form")).to_be_visible()
    expect(board.locator("#main")).to_be_hidden()
    expect(board.locator("#who")).to_be_hidden()
    expect(board.locator("#conn")).to_have_attribute("data-state", "offline")
    poll(lambda: not [c for c in board.context.cookies() if c["name"] == "soc_session"], 10,
         "the session cookie deleted by POST /api/logout's answer")
    # The old session is over on the server, not only forgotten by the browser.
    status, body, _ = pipeline.raw_request("GET", "/api/district", headers={"Cookie": cookie})
    assert status == 401, body
    board.reload()
    expect(board.locator("#signin-form")).to_be_visible()
    expect(board.locator("#error")).to_be_hidden()   # nobody signed in is not an error


def test_a_reload_keeps_the_person_signed_in_and_their_actions_still_pass_the_csrf_check(pipeline, pages, build):
    ticket = traffic_ticket(pipeline, build, community="yugang")
    officer = pages.user("ops_centre", name="孙值班")
    board = pages.board(user=officer)
    board.reload()
    expect(board.locator("#conn")).to_have_attribute("data-state", "connected", timeout=15_000)
    expect(board.locator("#signin")).to_be_hidden()
    expect(board.locator("#who")).to_have_attribute("data-user-id", officer)
    # A state change after the reload carries the CSRF token read again from GET /api/district.
    the_row = row(board, ticket.ticket_id)
    the_row.locator('button[data-action="seen"]').click()
    expect(the_row.locator(".seen")).to_contain_text("孙值班")
    expect(board.locator("#error")).to_be_hidden()
    seen = [h for h in pipeline.ticket(ticket.ticket_id).history if h.kind is HistoryKind.acknowledged]
    assert [h.user.user_id for h in seen] == [officer]

    # The same person's inbox in the same browser: signed in already.
    inbox = board.context.new_page()
    inbox.goto(f"{pipeline.worker.url}/inbox")
    expect(inbox.locator("#conn")).to_have_attribute("data-state", "connected", timeout=15_000)
    expect(inbox.locator("#who")).to_have_attribute("data-user-id", officer)


def test_a_community_workstation_sees_its_own_community_only_and_no_centre_controls(pipeline, pages, build):
    before_ours = build.city(community="liyuan")
    before_theirs = build.city(community="haibin")
    for event in (before_ours, before_theirs):
        pipeline.send("soc.raw.city", event)
    poll(lambda: len(pipeline.tickets_where(lambda t: t.source_ref in (before_ours["case_no"], before_theirs["case_no"]))) == 2,
         30, "both tickets")
    board = pages.board("ws_liyuan", name="周网格")
    expect(board.locator("#who")).to_have_text("周网格 · 荔园社区工作站 · 经办人")
    ours = board.locator(f'#alerts > li[data-source-ref="{before_ours["case_no"]}"]')
    expect(ours).to_have_count(1)
    expect(board.locator(f'#alerts > li[data-source-ref="{before_theirs["case_no"]}"]')).to_have_count(0)

    # Live events are filtered the same way: a flood in liyuan shows, one in haibin does not.
    flood_ours = build.flood("liyuan", station_id=f"WL-LY-{build.unique}", value=3.5)
    flood_theirs = build.flood("haibin", station_id=f"WL-HB-{build.unique}", value=3.5)
    pipeline.send("soc.raw.flood", flood_theirs)
    pipeline.send("soc.raw.flood", flood_ours)
    expect(board.locator(f'#alerts > li[data-source-ref^="{flood_ours["station_id"]}@"]')).to_have_count(1, timeout=10_000)
    poll(lambda: pipeline.tickets_where(lambda t: t.source_ref.startswith(f'{flood_theirs["station_id"]}@')), 30,
         "the haibin flood ticket")
    board.wait_for_timeout(1000)
    expect(board.locator(f'#alerts > li[data-source-ref^="{flood_theirs["station_id"]}@"]')).to_have_count(0)
    for ticket_id in board.eval_on_selector_all("#alerts > li", "rows => rows.map(r => r.dataset.ticketId)"):
        ticket = pipeline.ticket(ticket_id)
        assert ticket.community == "liyuan" or "ws_liyuan" in ticket.inboxes, ticket

    # A workstation clerk verifies nothing, silences nothing and sets no response level.
    for action in ("verify", "redispatch", "silence", "approve-extension"):
        assert board.locator(f'button[data-action="{action}"]').count() == 0, action
    expect(board.locator("#response-form")).to_be_hidden()
    expect(board.locator("#silenced-toggle")).to_be_hidden()


def test_a_leaders_board_shows_no_verify_but_the_response_level(pipeline, pages, build):
    ticket = resolved_ticket(pipeline, build)
    leader = pages.board("district_leadership", name="吴主任")
    expect(leader.locator("#who")).to_contain_text("吴主任 · ")
    expect(leader.locator("#who")).to_have_attribute("data-role", "leader")
    the_row = row(leader, ticket.ticket_id)
    expect(the_row).to_have_attribute("data-status", "resolved", timeout=10_000)
    assert the_row.locator('button[data-action="verify"], button[data-action="rework"]').count() == 0
    assert the_row.locator('button[data-action="silence"]').count() == 0
    expect(leader.locator("#response-form")).to_be_visible(timeout=15_000)


def test_a_clerk_accepts_on_the_inbox_and_decides_no_extension_a_supervisor_does(pipeline, pages, build):
    ticket = traffic_ticket(pipeline, build, community="xingang")
    clerk = pages.user("traffic_police", name=f"郑警官{build.unique}")
    inbox = pages.inbox("traffic_police", user=clerk)
    expect(inbox.locator("#who")).to_have_text(f"郑警官{build.unique} · 交警大队海湾中队 · 经办人")
    the_card = card(inbox, ticket.ticket_id)
    expect(the_card).to_have_attribute("data-status", "dispatched")
    the_card.locator('.buttons button[data-action="accept"]').click()
    form = the_card.locator('form[data-action="accept"]')
    assert form.locator('input[name="by"]').count() == 0   # the person is the sign-in, not a field
    form.locator('textarea[name="note"]').fill("已派警")
    form.locator('button[type="submit"]').click()
    expect(the_card).to_have_attribute("data-status", "accepted")
    expect(inbox.locator("#error")).to_be_hidden()
    last = pipeline.ticket(ticket.ticket_id).history[-1]
    assert (last.action, last.user.user_id, last.note) == ("accept", clerk, "已派警")
    assert last.by.startswith(f"郑警官{build.unique}")
    the_card.locator("details summary").click()
    expect(the_card.locator(".history")).to_contain_text(f"郑警官{build.unique}")

    # The clerk asks for an extension: no one decides their own, and a clerk decides none at all.
    the_card.locator('.buttons button[data-action="extend"]').click()
    form = the_card.locator('form[data-action="extend"]')
    until = (pipeline.ticket(ticket.ticket_id).resolve_due + timedelta(days=1)).astimezone(CST)
    form.locator('input[name="until"]').fill(until.strftime("%Y-%m-%dT%H:%M"))
    form.locator('textarea[name="reason"]').fill("需协调拖车")
    form.locator('button[type="submit"]').click()
    expect(the_card.locator(".ext")).to_be_visible()
    assert the_card.locator('button[data-action="approve-extension"]').count() == 0
    other_clerk = pages.inbox("traffic_police", name="王警官")
    expect(card(other_clerk, ticket.ticket_id).locator(".ext")).to_be_visible()
    assert card(other_clerk, ticket.ticket_id).locator('button[data-action="approve-extension"]').count() == 0

    # The department's supervisor decides it.
    supervisor = pages.inbox("traffic_police", name="冯队长", role="supervisor")
    expect(supervisor.locator("#who")).to_contain_text("冯队长 · 交警大队海湾中队 · 科室负责人")
    sup_card = card(supervisor, ticket.ticket_id)
    sup_card.locator('.buttons button[data-action="approve-extension"]').click()
    sup_card.locator('form[data-action="approve-extension"] button[type="submit"]').click()
    expect(sup_card.locator(".ext")).to_have_count(0)
    expect(supervisor.locator("#error")).to_be_hidden()
    decided = pipeline.ticket(ticket.ticket_id)
    assert decided.extension is None and decided.history[-1].kind is HistoryKind.extension_approved
    assert decided.history[-1].user.role.value == "supervisor"


def test_a_session_ended_on_the_server_brings_the_form_back_with_a_clear_message(pipeline, pages):
    clerk = pages.user("flood_control", name="陈工")
    inbox = pages.inbox("flood_control", user=clerk)
    pipeline.accounts(lambda store: store.sign_out_everywhere(clerk))
    # The inbox polls every 3 s: its next request is refused, and the form comes back.
    expect(inbox.locator("#signin-form")).to_be_visible(timeout=10_000)
    expect(inbox.locator("#error")).to_contain_text("登录已失效，请重新登录")
    expect(inbox.locator("#main")).to_be_hidden()
    pages.sign_in(inbox, clerk, TEST_PASSWORD)
    expect(inbox.locator("#conn")).to_have_attribute("data-state", "connected", timeout=15_000)
    expect(inbox.locator("#error")).to_be_hidden()
