"""未诉先办 through the real stack (its own: it takes CAP from a feed): manhole reports sent through
soc.raw.city with Kafka timestamps days apart make two recurring places; a CAP rainstorm warning posted to
POST /api/ingest/cap puts one blue preventive ticket per place, with the place's history, in the inbox of the
department its reports went to within 10 s; a place reported twice gets none."""
from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from schemas.enums import Category, Severity, TicketKind
from tests.integration.test_stats_api import send_at
from tests.support import marker, poll, running_pipeline

pytestmark = pytest.mark.integration

CST = timezone(timedelta(hours=8))
FEED_TOKEN = f"test-cap-{marker()}"

RAINSTORM = """<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>44030041600000_{unique}</identifier>
  <sender>szmb@weather.sz.gov.cn</sender>
  <sent>{sent}</sent>
  <status>Actual</status>
  <msgType>Alert</msgType>
  <scope>Public</scope>
  <info>
    <language>zh-CN</language>
    <category>Met</category>
    <event>暴雨</event>
    <urgency>Expected</urgency>
    <severity>Severe</severity>
    <certainty>Likely</certainty>
    <eventCode><valueName>GB/T 35965.1</valueName><value>11B03</value></eventCode>
    <expires>{expires}</expires>
    <senderName>深圳市气象台</senderName>
    <headline>深圳市气象台发布暴雨橙色预警信号</headline>
    <description>预计未来3小时内本市将出现50毫米以上降雨，请做好防御工作。</description>
    <area>
      <areaDesc>南山区海湾街道</areaDesc>
      <polygon>22.49,113.89 22.49,113.99 22.55,113.99 22.55,113.89 22.49,113.89</polygon>
    </area>
  </info>
</alert>"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with running_pipeline(tmp_path_factory.mktemp("preventive-stack"), SOC_CAP_TOKEN_SZMB=FEED_TOKEN) as running:
        yield running


def manholes(stack, build, community: str, days_ago: list[int]) -> list:
    """Manhole reports at one spot of `community` (a few metres apart), at 10:00 `days_ago` days ago; their
    tickets, oldest first."""
    lat, lon = build.point(community)
    refs = []
    for n, days in enumerate(days_ago):
        day = (datetime.now(CST) - timedelta(days=days)).date()
        at = datetime(day.year, day.month, day.day, 10, 0, tzinfo=CST)
        report = build.city(community, category="manhole_cover_missing", description="井盖缺失",
                            reported_at=at.isoformat(), lat=round(lat + n * 10 / 111_195.0, 6), lon=lon)
        send_at(stack, "soc.raw.city", report, at)
        refs.append(report["case_no"])

    def all_opened():
        found = [stack.tickets_where(lambda t, ref=ref: t.source_ref == ref) for ref in refs]
        return all(found) and [f[0] for f in found]

    return poll(all_opened, 30, f"{len(refs)} manhole tickets")


def local_day(days_ago: int) -> str:
    day = (datetime.now(CST) - timedelta(days=days_ago)).date()
    return f"{day.month}月{day.day}日"


def test_a_cap_rainstorm_warning_puts_preventive_tickets_in_the_departments_inboxes_within_10_s(stack, build):
    guiwan = manholes(stack, build, "guiwan", [20, 10, 3])
    shahe = manholes(stack, build, "shahe", [12, 6, 2])
    twice = manholes(stack, build, "rongshu", [8, 4])
    places = {"guiwan": guiwan[0], "shahe": shahe[0]}
    assert not stack.tickets_where(lambda t: t.kind is TicketKind.preventive)

    sent = datetime.now(timezone.utc).replace(microsecond=0)
    body = RAINSTORM.format(unique=marker(), sent=sent.isoformat(),
                            expires=(sent + timedelta(hours=6)).isoformat()).encode()
    posted = time.monotonic()
    status, alert = stack.request("POST", "/api/ingest/cap", token=FEED_TOKEN, body=body,
                                  headers={"Content-Type": "application/xml"})
    assert status == 201 and (alert["kind"], alert["acted"]) == ("rainstorm", True), alert

    def in_inboxes():
        found = {}
        for community, founder in places.items():
            mine = [t for t in stack.inbox(founder.department)
                    if t.kind is TicketKind.preventive and (t.lat, t.lon) == (founder.lat, founder.lon)]
            if not mine:
                return None
            found[community] = mine
        return found

    found = poll(in_inboxes, 10, "a preventive ticket per recurring place in its department's inbox")
    assert time.monotonic() - posted < 10
    for community, days in (("guiwan", [20, 10, 3]), ("shahe", [12, 6, 2])):
        [ticket] = found[community]
        assert (ticket.category, ticket.severity, ticket.department, ticket.community) == (
            Category.city_manhole, Severity.blue, places[community].department, community)
        assert ticket.title == "未诉先办：暴雨预警，井盖问题高发点位提前处置"
        assert ticket.description == f"此处近30天井盖问题3次（最近：{'、'.join(local_day(d) for d in days)}）"
    # The place reported twice is not a recurring one; every preventive ticket stands at one of the two.
    everything = stack.tickets_where(lambda t: t.kind is TicketKind.preventive)
    assert {(t.lat, t.lon) for t in everything} == {(f.lat, f.lon) for f in places.values()}
    assert not any((t.lat, t.lon) == (twice[0].lat, twice[0].lon) for t in everything)
