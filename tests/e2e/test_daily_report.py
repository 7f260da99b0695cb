"""The 值班日报 of a storm's day as a leader signs it, in the real headless Chromium on a stack of its own (so
the day holds exactly this test's events): 40 tickets, a typhoon warning raised from orange to red, the
response level moved by the warnings and by the leadership, tickets accepted and resolved by people, a
handover. The page printed by Chromium to PDF (page.pdf) and the PDF the worker draws itself
(GET /api/stats/daily.pdf) are both read back with pypdf: a bounded number of A4 pages, every page but the
last at least 30% used, no ISO timestamp or machine word in the text; no table column is narrower than two
characters; the date field shows YYYY-MM-DD."""
from __future__ import annotations

import io
import math
import re
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone

import pypdf
import pytest
from playwright.sync_api import expect

from handlers.geo import grid_cell
from tests.e2e.conftest import Pages
from tests.integration.payloads import Builder
from tests.integration.test_cap import document, response_changes
from tests.integration.test_plans import active_run
from tests.integration.test_stats_api import plan_tasks
from tests.support import CONFIG, marker, poll, running_pipeline

pytestmark = pytest.mark.integration

FEED_TOKEN = f"test-cap-{marker()}"
A4 = (595, 842)   # points
# A page holds the head, the overview and the weather, then a dozen rows at least (an event with its course,
# an open item, a department's rates): more pages than that means the layout wastes paper.
ROWS_PER_PAGE = 12
MIN_FILL = 0.30
# What people must never read: ISO times and offsets, the pipeline's name, "orange -> red", enum and rule
# names (snake_case, department ids among them), CAP message types; in the Chinese report no English at all
# (a ticket's state or a severity in English is its enum value there).
MACHINE = re.compile(r"\d{4}-\d{2}-\d{2}T|\d{2}:\d{2}:\d{2}|[+-]\d{2}:\d{2}\b|\+00:00|pipeline|->|\b[a-z]+_[a-z_]+\b"
                     r"|\b(Alert|Update|Cancel|manual|null|undefined|NaN)\b")
ENUM_WORDS = re.compile(r"\b(dispatched|accepted|resolved|closed|returned|escalated|reminded|reported|red|orange|yellow"
                        r"|blue|traffic|flood|city|construction)\b")


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with running_pipeline(tmp_path_factory.mktemp("daily-stack"), SOC_CAP_TOKEN_SZMB=FEED_TOKEN) as running:
        yield running


@pytest.fixture
def pages(request, browser, stack, artifacts):
    opened = Pages(browser, stack)
    yield opened
    report = getattr(request.node, "rep_call", None)
    opened.close(request.node.name if report is not None and report.failed else None, artifacts)


def storm(stack) -> dict:
    """The day's events; returns what was done, to find it in the report."""
    # Letters only: a case number like 12345-13864572-3 reads as a phone number and is stored masked, so its
    # ticket would never be found by it.
    build = Builder(CONFIG, marker())
    unique = uuid.uuid4().hex[:6]
    now = datetime.now(timezone.utc).replace(microsecond=0)
    # A typhoon warning, orange then raised to red: the rules raise the response level by themselves.
    # Both sent in the same second, as a feed may: the update still raises the ticket (handlers/cap.py).
    for name in ("typhoon_orange_actual", "typhoon_red_update"):
        status, alert = stack.request("POST", "/api/ingest/cap", token=FEED_TOKEN, body=document(name, unique, now,
                                      now + timedelta(hours=6)), headers={"Content-Type": "application/xml"})
        assert status == 201, alert
    station = alert["station_id"]
    leader = stack.add_user(f"leader-{unique}", "district_leadership", "leader", name="王副主任")
    status, body = stack.post("/api/response", None, {"level": "I", "reason": "多处道路积水，启动Ⅰ级响应"},
                              token=stack.user_token(leader))
    assert status == 201, body

    roads = ["望海路", "滨海大道", "创业路", "南海大道", "后海大道", "登良路", "工业八路", "海德三道"]
    cells: set[str] = set()

    def apart(community: str) -> dict:
        """A point of the community in a dedup cell of its own: 40 reports, 40 tickets."""
        while True:
            lat, lon = build.point(community)
            cell = grid_cell(lat, lon, CONFIG.rules.dedup.grid_m)
            if cell not in cells:
                cells.add(cell)
                return {"lat": lat, "lon": lon}

    events = ([build.traffic(road=roads[i % 8], injuries=3, **apart("wanghai")) for i in range(8)]
              + [build.traffic("guiwan", road=roads[i % 8], injuries=1, **apart("guiwan")) for i in range(8)]
              + [build.traffic("yugang", road=roads[i % 8], **apart("yugang")) for i in range(12)])
    cases = [build.city(**apart("liyuan")) for _ in range(12)]
    for e in events:
        stack.send("soc.raw.traffic", e)
    for c in cases:
        stack.send("soc.raw.city", c)
    refs = {e["event_id"] for e in events} | {c["case_no"] for c in cases}
    tickets = poll(lambda: (found := stack.tickets_where(lambda t: t.source_ref in refs)) and len(found) == 40 and found,
                   120, "the day's 40 tickets")

    # Each red accident starts the traffic pre-plan (plans.yaml): its task tickets are the day's red events too.
    for t in tickets:
        if t.severity.value == "red":
            plan_tasks(stack, t)

    # People at work: a clerk of the traffic police accepts the red and orange ones with a note, resolves half.
    clerk = stack.user_token(stack.add_user(f"clerk-{unique}", "traffic_police", "clerk", name="李警官"))
    urgent = sorted((t for t in tickets if t.severity.value in ("red", "orange")), key=lambda t: t.ticket_id)
    for n, t in enumerate(urgent):
        status, body = stack.post(f"/api/tickets/{t.ticket_id}/accept", None,
                                  {"note": f"已派第 {n % 4 + 1} 组警力赶赴现场，设置警示并疏导交通"}, token=clerk)
        assert status == 200, body
        if n % 2 == 0:
            status, body = stack.post(f"/api/tickets/{t.ticket_id}/resolve", None,
                                      {"resolution": "伤员已送医，车辆已拖离，道路恢复通行"}, token=clerk)
            assert status == 200, body
    officer = stack.add_user(f"duty-{unique}", "ops_centre", "duty_officer", name="张伟")
    status, record = stack.post("/api/duty/handover", None, {"note": "台风红色预警生效中，望海路、滨海大道积水点需持续关注"},
                                token=stack.user_token(officer))
    assert status == 201, record
    settled(stack, station)
    return {"officer": officer, "urgent": urgent, "handover_note": record["note"]}


def settled(stack, station: str) -> None:
    """Wait for what the warning starts by itself, a moment after it is taken: its ticket raised to red, the
    typhoon level (two changes) and the typhoon pre-plan that level starts, with its task tickets (orange events
    of the day). The page is read after them, or it shows fewer rows than the report asked a moment later."""
    poll(lambda: [t for t in stack.inbox("flood_control") if t.source_ref.startswith(station)
                  and t.severity.value == "red"], 30, "the typhoon ticket raised to red")
    poll(lambda: {c["trigger"] for c in response_changes(stack, station)} >= {"typhoon_orange", "typhoon_red"}, 30,
         "the typhoon level's two changes")
    plan = next(p for p in CONFIG.plans.plans if p.trigger.by == "level" and p.hazard.value == "typhoon")
    poll(lambda: (run := active_run(stack, plan.id))
         and len(stack.tickets_where(lambda t: t.source_ref == run["run_id"])) == len(plan.tasks), 60,
         "the typhoon pre-plan's task tickets")


MARGIN = 14 / 25.4 * 72   # the top and bottom margins of both PDFs (14 mm), in points


def fill(data: bytes) -> list[float]:
    """Each page's used share of its content area (inside the top and bottom margins, where the page number
    sits): from its highest line of text to its lowest, over the area's height."""
    reader = pypdf.PdfReader(io.BytesIO(data))
    out = []
    for page in reader.pages:
        height = float(page.mediabox.height)
        ys: list[float] = []

        def seen(text, cm, tm, _font, _size, ys=ys):
            y = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]   # the text's y in the page's space
            if text.strip() and MARGIN < y < height - MARGIN:
                ys.append(y)
        page.extract_text(visitor_text=seen)
        out.append((max(ys) - min(ys)) / (height - 2 * MARGIN) if ys else 0.0)
    return out


def check_document(data: bytes, what: str, report: dict, must_say: list[str], lang: str = "zh") -> str:
    reader = pypdf.PdfReader(io.BytesIO(data))
    sizes = {(round(float(p.mediabox.width)), round(float(p.mediabox.height))) for p in reader.pages}
    assert sizes == {A4}, (what, sizes)
    rows = len(report["events"]) + len(report["overdue"]) + len(report["open_items"]["tickets"]) + len(report["departments"])
    assert 2 <= len(reader.pages) <= 1 + math.ceil(rows / ROWS_PER_PAGE), (what, len(reader.pages), rows)
    used = fill(data)
    assert all(u >= MIN_FILL for u in used[:-1]), (what, used)
    pages = [p.extract_text() for p in reader.pages]
    for number, said in enumerate(pages, 1):   # numbered "2 / 5"
        assert f"{number} / {len(pages)}" in said, (what, number)
    text = "\n".join(pages)
    assert not MACHINE.search(text), (what, MACHINE.search(text))
    if lang == "zh":
        assert not ENUM_WORDS.search(text), (what, ENUM_WORDS.search(text))
    flat = text.replace("\n", "").replace(" ", "")
    for said in must_say:
        assert said.replace(" ", "") in flat, (what, said)
    return text


def test_a_storms_daily_report_prints_to_a_few_full_a4_pages_in_peoples_words(stack, pages, artifacts):
    done = storm(stack)
    page = pages._page({"width": 1366, "height": 768})
    page.goto(f"{stack.worker.url}/stats/daily")
    pages.sign_in(page, done["officer"])
    today = datetime.now(timezone(timedelta(hours=8))).date().isoformat()
    expect(page.locator("body")).to_have_attribute("data-date", today, timeout=15_000)
    status, report = stack.get(f"/api/stats/daily?date={today}", "ops_centre")
    assert status == 200, report
    # The date as people here write it, not the browser's locale (12/06/2026).
    assert page.get_attribute("#date", "type") == "text" and page.input_value("#date") == today
    # Every red and orange event with its course; the warnings and level changes; the handover; who signs.
    expect(page.locator("#events tbody tr")).to_have_count(len(report["events"]))
    assert len(report["events"]) >= 16 and len(report["warnings"]) == 2 and len(report["response"]["changes"]) >= 2
    expect(page.locator("#timeline li")).to_have_count(len(report["warnings"]) + len(report["response"]["changes"]))
    expect(page.locator("#handovers li")).to_contain_text(done["handover_note"])
    expect(page.locator("#sign")).to_contain_text("值班员（签字）")
    expect(page.locator("#sign")).to_contain_text("带班领导（签字）")
    accepted = page.locator(f'#events tr[data-ticket-id="{done["urgent"][0].ticket_id}"]')
    expect(accepted).to_contain_text("李警官（交警大队海湾中队）签收：已派第 1 组警力赶赴现场")

    page.emulate_media(media="print")
    expect(page.locator("header.topbar")).to_be_hidden()
    # No column of one character per line: every cell at least two characters wide, measured at the width
    # of the A4 page inside its margins (210 mm less 2 x 12 mm, at 96 px an inch), as Chromium prints it.
    page.set_viewport_size({"width": round((210 - 24) / 25.4 * 96), "height": 1000})
    narrow = page.evaluate("""() => [...document.querySelectorAll('.daily-doc th, .daily-doc td')]
        .filter(c => c.textContent.trim() && c.getClientRects().length)   // shown (an empty table is hidden)
        .filter(c => c.getBoundingClientRect().width < 2 * parseFloat(getComputedStyle(c).fontSize))
        .map(c => c.textContent.trim().slice(0, 20))""")
    assert narrow == [], narrow
    printed = page.pdf(format="A4", print_background=True, prefer_css_page_size=True)
    (artifacts / "daily-report-chromium.pdf").write_bytes(printed)
    page.screenshot(path=str(artifacts / "daily-report-print.png"), full_page=True)
    must_say = [report["warnings"][1]["text"], report["response"]["changes"][0]["text"], done["handover_note"],
                "值班员（签字）", "带班领导（签字）"]
    check_document(printed, "chromium", report, must_say)

    # The PDF the worker draws (no browser in production), as the page's 下载 PDF link fetches it.
    href = page.get_attribute("#pdf", "href")
    assert href == f"/api/stats/daily.pdf?date={today}&lang=zh"
    request = urllib.request.Request(stack.worker.url + href,
                                     headers={"Authorization": f"Bearer {stack.user_token(done['officer'])}"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        assert answer.headers["Content-Type"] == "application/pdf"
        assert f'filename="daily-report-{today}.pdf"' in answer.headers["Content-Disposition"]
        drawn = answer.read()
    (artifacts / "daily-report-server.pdf").write_bytes(drawn)
    check_document(drawn, "server", report, must_say)

    # The duty officer's shift that started today instead of the whole day, when it has begun.
    page.emulate_media(media="screen")
    if datetime.now(timezone(timedelta(hours=8))).strftime("%H:%M") >= "08:30":
        page.select_option("#period", "shift")
        expect(page.locator("#report-meta")).to_contain_text("统计时段（值班班次） 08:30 至")
        assert "period=shift" in page.url and "&period=shift&" in page.get_attribute("#pdf", "href")

    # In English: the page's lines and the PDF it links to.
    page.click("#lang")
    expect(page.locator("#sign")).to_contain_text("Leader on duty (signature)")
    expect(page.locator("#timeline li").first).to_have_text(report["warnings"][0]["text_en"])
    href = page.get_attribute("#pdf", "href").replace("&period=shift", "")
    assert href == f"/api/stats/daily.pdf?date={today}&lang=en"
    request = urllib.request.Request(stack.worker.url + href,
                                     headers={"Authorization": f"Bearer {stack.user_token(done['officer'])}"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        english = answer.read()
    check_document(english, "server-en", report, [report["warnings"][1]["text_en"], done["handover_note"],
                                                  "Leader on duty (signature)"], "en")
