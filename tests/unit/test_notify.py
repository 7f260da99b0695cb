"""handlers/notify.py: which changes reach which channel, with whom mentioned, and how a queue goes out."""
from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

import pytest

from handlers import escalation, notify, ticketing
from handlers import notify_channels as nc
from handlers.intervals import CompiledInterval
from schemas.enums import Category, Severity, Source
from schemas.intervals import TimeInterval
from schemas.notify import load_notify
from schemas.records import TicketAction, TicketEvent
from tests.unit.conftest import CONFIG_DIR, SHANGHAI
from tests.unit.test_ticketing import make_incident

CITIZEN = "13912345678"
OFFICER_PHONE = "13800000001"
LEADER_PHONE = "13800000002"
# Wednesday 2 December 2026, 10:00: officer 王强 (wang_qiang, third in the working-day rotation from Monday) and leader 陈建国.
DAY = datetime(2026, 12, 2, 10, 0, tzinfo=SHANGHAI)
ENV = {
    "SOC_NOTIFY_FLOOD_DUTY_URL": "https://oapi.dingtalk.com/robot/send?access_token=t",
    "SOC_NOTIFY_FLOOD_DUTY_SECRET": "SEC0123456789abcdef",
    "SOC_NOTIFY_CITY_MANAGEMENT_URL": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k",
    "SOC_NOTIFY_OPS_CENTRE_URL": "https://ops.example/hook",
    "SOC_NOTIFY_OPS_CENTRE_SECRET": "s3cret",
    "SOC_DUTY_WANG_QIANG_PHONE": OFFICER_PHONE,
    "SOC_DUTY_CHEN_JIANGUO_PHONE": LEADER_PHONE,
}


@pytest.fixture(scope="module")
def rules(config):
    return notify.compile_rules(load_notify(CONFIG_DIR, config), config, ENV, "https://soc.example")


def opened(config, severity=Severity.red, at=DAY, category=Category.flood_waterlogging, source=Source.flood, n=1):
    incident = make_incident(n, severity=severity, observed_at=at - timedelta(seconds=2), source=source,
                             category=category, received_at=at).model_copy(
        update={"title": f"望海路积水45厘米，市民{CITIZEN}来电"})
    outcome = ticketing.step(config, None, incident, incident.dedup_key)
    return outcome.state, outcome.tickets[0]


def by_channel(deliveries):
    return {d.channel: d for d in deliveries}


def test_a_red_flood_dispatch_reaches_the_flood_robot_with_the_officer_and_the_centre_and_leaders(config, rules):
    _, ticket = opened(config)
    found = by_channel(notify.deliveries(rules, ticket, DAY - timedelta(days=1)))
    # leadership_mail has no SMTP URL in ENV and traffic_police is not this ticket's: neither is queued.
    assert set(found) == {"flood_duty", "ops_centre"}
    flood = found["flood_duty"]
    assert (flood.event, flood.severity, flood.muted, flood.mention) == ("dispatched", Severity.red, False, ["wang_qiang"])
    assert flood.id == f"flood_duty/{ticket.ticket_id}:dispatched:dispatch"
    assert found["ops_centre"].mention == []  # a webhook takes no mentions
    assert CITIZEN not in json.dumps(flood.model_dump(mode="json"), ensure_ascii=False)


def test_ids_come_from_the_change_so_every_later_version_gives_the_same_ones(config, rules):
    state, ticket = opened(config, Severity.orange)
    first = {d.id for d in notify.deliveries(rules, ticket, DAY - timedelta(days=1))}
    again = ticketing.step(config, state, make_incident(2, severity=Severity.red, observed_at=DAY,
                                                        received_at=DAY + timedelta(minutes=1)), ticket.dedup_key)
    later = {d.id: d for d in notify.deliveries(rules, again.tickets[0], DAY - timedelta(days=1))}
    assert first < set(later)
    raised = later[f"flood_duty/{ticket.ticket_id}:severity_raised:{make_incident(2).incident_id}"]
    # Raised to red: the officer is mentioned.
    assert (raised.event, raised.severity, raised.mention) == ("severity_raised", Severity.red, ["wang_qiang"])
    # The message says the change as the history does: in words, at local time.
    assert dict(raised.fields)["经过"] == "12月2日 10:01 系统将等级由橙色升为红色"


def test_an_escalation_message_says_the_step_its_stage_and_local_deadline(config, rules):
    state, ticket = opened(config, Severity.orange)
    step = next(s for s in escalation.due_steps(config, ticket, ticket.accept_due) if s.stage == "accept")
    ticket = ticketing.step(config, state, escalation.escalation_event(ticket, step, step.at), ticket.dedup_key).tickets[0]
    [reminded] = [d for d in notify.deliveries(rules, ticket, DAY - timedelta(days=1))
                  if d.channel == "flood_duty" and d.event == "reminded"]
    due = ticket.accept_due.astimezone(SHANGHAI)
    said = dict(reminded.fields)["经过"]
    assert said.endswith(f"系统自动催办街道三防办：签收时限 {due.month}月{due.day}日 {due:%H:%M}")
    assert "pipeline" not in said and "+00:00" not in said and "T0" not in said


def test_escalation_steps_mention_the_officer_then_the_leader(config, rules):
    state, ticket = opened(config, Severity.orange)
    mentions = {}
    for step in escalation.due_steps(config, ticket, ticket.accept_due + timedelta(hours=12)):
        event = escalation.escalation_event(ticket, step, step.at)
        ticket = ticketing.step(config, state, event, ticket.dedup_key).tickets[0]
        state = ticketing.step(config, state, event, ticket.dedup_key).state
    for d in notify.deliveries(rules, ticket, DAY - timedelta(days=1)):
        if d.channel == "flood_duty":
            mentions[d.event] = d.mention
    assert mentions["reminded"] == ["wang_qiang"]
    assert mentions["escalated"] == ["chen_jianguo"]
    assert mentions["dispatched"] == []  # orange: nobody mentioned on dispatch


def test_night_mutes_yellow_city_tickets_but_never_red(config, rules):
    night = datetime(2026, 12, 2, 23, 15, tzinfo=SHANGHAI)
    _, yellow = opened(config, Severity.yellow, night, Category.city_street_order, Source.city)
    _, red = opened(config, Severity.red, night, Category.city_street_order, Source.city, n=2)
    assert by_channel(notify.deliveries(rules, yellow, night - timedelta(days=1)))["city_management"].muted
    assert not by_channel(notify.deliveries(rules, red, night - timedelta(days=1)))["city_management"].muted
    _, morning = opened(config, Severity.yellow, night + timedelta(hours=8, minutes=30), Category.city_street_order,
                        Source.city, n=3)
    assert not by_channel(notify.deliveries(rules, morning, night))["city_management"].muted


def test_below_min_severity_and_before_the_horizon_nothing_is_queued(config, rules):
    _, blue = opened(config, Severity.blue)
    assert "flood_duty" not in by_channel(notify.deliveries(rules, blue, DAY - timedelta(days=1)))
    _, red = opened(config, Severity.red)
    assert notify.deliveries(rules, red, DAY + timedelta(seconds=1)) == []


@pytest.mark.parametrize("spec, inside, outside", [
    ({"times": [{"start_time": "22:00", "end_time": "07:30"}]}, ["23:59", "00:00", "07:29"], ["07:30", "12:00", "21:59"]),
    ({"times": [{"start_time": "09:00", "end_time": "17:00"}], "weekdays": ["monday:friday"]}, ["09:00"], ["17:00"]),
])
def test_time_intervals_span_midnight_and_respect_weekdays(spec, inside, outside):
    interval = CompiledInterval.of(TimeInterval.model_validate(spec))
    wednesday = datetime(2026, 12, 2, tzinfo=SHANGHAI)
    for clock, expected in [*((c, True) for c in inside), *((c, False) for c in outside)]:
        hours, minutes = map(int, clock.split(":"))
        assert interval.contains(wednesday.replace(hour=hours, minute=minutes)) is expected, clock
    if spec.get("weekdays"):
        assert not interval.contains(datetime(2026, 12, 5, 10, tzinfo=SHANGHAI))  # a Saturday


def test_backoff_doubles_up_to_its_cap(rules):
    assert [notify.backoff_s(rules.delivery, n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]


def storm(config, rules, count, channel="city_management"):
    batch = []
    for n in range(count):
        _, ticket = opened(config, Severity.yellow, DAY + timedelta(seconds=n), Category.city_street_order, Source.city,
                           n=n + 1)
        ticket = ticket.model_copy(update={"ticket_id": f"T20261202-{n:04d}"})
        batch += [d for d in notify.deliveries(rules, ticket, DAY - timedelta(days=1)) if d.channel == channel]
    return batch


def test_a_storm_on_a_wecom_robot_is_one_digest_that_counts_what_it_cannot_list(config, rules):
    batch = storm(config, rules, 200)
    out = notify.outgoing(rules.channels["city_management"], batch, rules, DAY)
    [request] = out.http
    content = request.json()["markdown"]["content"]
    assert len(content.encode()) <= nc.WECOM_MARKDOWN_LIMIT
    listed = len(re.findall(r"T20261202-\d{4}", content))
    assert 10 < listed < 200
    assert f"另有：<font color=\"comment\">{200 - listed} 条" in content
    assert "200 条工单通知" in content
    assert out.message_id == notify.digest_id(batch) == notify.digest_id(list(reversed(batch)))


def test_a_webhook_digest_carries_every_item(config, rules):
    batch = storm(config, rules, 30, channel="ops_centre")
    [request] = notify.outgoing(rules.channels["ops_centre"], batch, rules, DAY).http
    body = request.json()
    assert body["event"] == "digest" and len(body["items"]) == 30
    assert {i["ticket"]["ticket_id"] for i in body["items"]} == {d.ticket_id for d in batch}
    assert request.headers["X-SOC-Signature"] == nc.webhook_signature("s3cret", request.body)


def test_a_single_dingtalk_message_is_signed_and_mentions_the_officers_number(config, rules):
    _, ticket = opened(config)
    flood = by_channel(notify.deliveries(rules, ticket, DAY - timedelta(days=1)))["flood_duty"]
    [request] = notify.outgoing(rules.channels["flood_duty"], [flood], rules, DAY).http
    body = request.json()
    assert body["at"]["atMobiles"] == [OFFICER_PHONE] and f"@{OFFICER_PHONE}" in body["markdown"]["text"]
    assert f"timestamp={int(DAY.timestamp() * 1000)}" in request.url and "sign=" in request.url
    assert CITIZEN not in request.body.decode()
    assert notify.requests_needed(rules.channels["flood_duty"], [flood]) == 1


def test_a_wecom_mention_is_a_second_request(config, rules):
    _, ticket = opened(config, Severity.red, DAY, Category.city_street_order, Source.city)
    city = by_channel(notify.deliveries(rules, ticket, DAY - timedelta(days=1)))["city_management"]
    out = notify.outgoing(rules.channels["city_management"], [city], rules, DAY)
    assert [r.json()["msgtype"] for r in out.http] == ["markdown", "text"]
    assert out.http[1].json()["text"]["mentioned_mobile_list"] == [OFFICER_PHONE]
    assert notify.requests_needed(rules.channels["city_management"], [city]) == 2


def test_red_never_waits_and_the_rest_wait_group_wait(config, rules):
    _, red = opened(config)
    _, yellow = opened(config, Severity.yellow, n=2)
    [r] = [d for d in notify.deliveries(rules, red, DAY - timedelta(days=1)) if d.channel == "flood_duty"]
    [y] = [d for d in notify.deliveries(rules, yellow, DAY - timedelta(days=1)) if d.channel == "flood_duty"]
    assert notify.ready_at(rules.grouping, r) == r.at
    assert notify.ready_at(rules.grouping, y) == y.at + timedelta(seconds=30)


def test_a_command_change_is_keyed_by_its_event_id(config, rules):
    state, ticket = opened(config, Severity.yellow)
    back = TicketEvent(event_id="evt-return-1", ticket_id=ticket.ticket_id, action=TicketAction.return_,
                       by="李四", actor="flood_control", at=DAY + timedelta(minutes=5), note="不属于本部门")
    returned = ticketing.step(config, state, back, ticket.dedup_key).tickets[0]
    ids = {d.id for d in notify.deliveries(rules, returned, DAY - timedelta(days=1))}
    assert f"flood_duty/{ticket.ticket_id}:returned:evt-return-1" in ids


@pytest.mark.parametrize("channel", ["city_management", "flood_duty"])
@pytest.mark.parametrize("title", ["井盖缺失", "望海路与滨海大道交叉口严重积水导致多车熄火交通中断需紧急排水"])
def test_a_digest_always_ends_with_its_count_and_link_whole(config, rules, channel, title):
    batch = [d.model_copy(update={"title": f"【黄色III级·派遣】{title}"}) for d in storm(config, rules, 200)]
    batch = [d.model_copy(update={"channel": channel}) for d in batch]
    out = notify.outgoing(rules.channels[channel], batch, rules, DAY)
    text = out.http[0].json()["markdown"].get("content") or out.http[0].json()["markdown"]["text"]
    assert not text.endswith(nc.TRUNCATED)
    listed = len(re.findall(r"T20261202-\d{4}", text))
    assert "/inbox)" in text
    assert (f"{200 - listed} 条，详见工单系统" in text) if listed < 200 else ("另有" not in text)


def test_a_quiet_ticket_is_not_notified_until_its_silence_ends(config, rules):
    _, ticket = opened(config)
    quiet = ticket.model_copy(update={"silenced_by": "s1", "quiet_until": DAY + timedelta(hours=1)})
    assert all(d.muted for d in notify.deliveries(rules, quiet, DAY - timedelta(days=1)))
    later = quiet.model_copy(update={"quiet_until": DAY})
    assert not any(d.muted for d in notify.deliveries(rules, later, DAY - timedelta(days=1)))


@pytest.mark.parametrize("spec, inside, outside", [
    ({"days_of_month": ["-1"]}, [datetime(2026, 2, 28, 12, tzinfo=SHANGHAI)], [datetime(2026, 2, 27, 12, tzinfo=SHANGHAI)]),
    ({"days_of_month": ["1:5"], "months": ["march:may"]}, [datetime(2026, 4, 3, tzinfo=SHANGHAI)],
     [datetime(2026, 6, 3, tzinfo=SHANGHAI), datetime(2026, 4, 6, tzinfo=SHANGHAI)]),
    ({"months": ["12", "january"], "times": [{"start_time": "23:00", "end_time": "01:00"}]},
     [datetime(2026, 12, 31, 23, 30, tzinfo=SHANGHAI), datetime(2027, 1, 1, 0, 30, tzinfo=SHANGHAI)],
     [datetime(2026, 11, 30, 23, 30, tzinfo=SHANGHAI)]),
])
def test_days_of_month_and_months(spec, inside, outside):
    interval = CompiledInterval.of(TimeInterval.model_validate(spec))
    assert all(interval.contains(t) for t in inside) and not any(interval.contains(t) for t in outside)
