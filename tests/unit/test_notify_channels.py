"""handlers/notify_channels: each vendor's wire format, signatures, limits and masking."""
from __future__ import annotations

import hashlib
import hmac
import json
import re
import unicodedata
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest

from handlers import notify_channels as nc
from schemas.enums import Category, Escalation, Severity, Source
from schemas.notify import EVENTS
from schemas.records import Ticket

UTC = ZoneInfo("UTC")
AT = datetime(2026, 5, 12, 1, 30, tzinfo=UTC)  # 09:30 in the district
CITIZEN = "13912345678"
LANDLINE = "0755-26881234"
OFFICER = "13800001111"
BASE = "https://soc.haiwan.example.gov.cn"


def make_ticket(**changes) -> Ticket:
    values = dict(
        ticket_id="T-20260512-0001", incident_id="I-1", source_ref="12345-2026-000321", dedup_key="flood:abc",
        department="flood_control", watchers=["ops_centre"], source=Source.flood,
        category=Category.flood_waterlogging, subcategory="waterlogging", severity=Severity.red,
        title=f"望海路积水45厘米，市民{CITIZEN}来电", description=f"联系人电话{LANDLINE}，车辆涉水熄火",
        community="wanghai", lat=22.51, lon=113.93, escalation=Escalation.reminded, occurrences=3,
        observed_at=AT, received_at=AT, last_seen_at=AT, dispatched_at=AT,
        accept_due=AT + timedelta(minutes=15), resolve_due=AT + timedelta(hours=2), version=4,
    )
    values.update(changes)
    return Ticket(**values)


@pytest.fixture
def message(config):
    return nc.render(make_ticket(), "dispatched", config.district, BASE, "dispatch")


def test_the_vendors_signing_test_vectors():
    assert nc.dingtalk_sign("SEC0123456789abcdef", 1700000000000) == "TSZbRFUuvaSQaRKUpF970OPCb2/LcQAP3wOvwZIzBZk="
    assert nc.feishu_sign("demo", 1599360473) == "l1N0gAcBjdwBvGm1xMjOF0XSyaLRpR7tuO5dHfhAYc8="


def test_the_chinese_text_carries_everything_a_duty_officer_needs(message):
    text = nc.plain_text(message)
    assert message.title.startswith("【红色I级·派遣】望海路积水45厘米")
    for expected in ("等级：红色（I级）", "社区：望海社区", "责任部门：街道三防办", "签收期限：2026-05-12 09:45",
                     "办结期限：2026-05-12 11:30", "发生次数：3", "督办环节：催办", "工单号：T-20260512-0001",
                     f"查看工单：{BASE}/inbox#ticket=T-20260512-0001"):
        assert expected in text
    assert message.id == "T-20260512-0001:dispatched:dispatch"


def test_dingtalk_markdown_signed_in_the_query(message):
    request = nc.dingtalk_request(message, url="https://oapi.dingtalk.com/robot/send?access_token=abc",
                                  secret="SEC0123456789abcdef", timestamp_ms=1700000000000, mobiles=[OFFICER])
    assert request.method == "POST" and request.headers["Content-Type"].startswith("application/json")
    parts = urlsplit(request.url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "oapi.dingtalk.com", "/robot/send")
    assert "sign=TSZbRFUuvaSQaRKUpF970OPCb2%2FLcQAP3wOvwZIzBZk%3D" in parts.query
    query = parse_qs(parts.query)
    assert query == {"access_token": ["abc"], "timestamp": ["1700000000000"],
                     "sign": ["TSZbRFUuvaSQaRKUpF970OPCb2/LcQAP3wOvwZIzBZk="]}
    body = request.json()
    assert set(body) == {"msgtype", "markdown", "at"} and body["msgtype"] == "markdown"
    assert body["markdown"]["title"] == message.title
    assert body["at"] == {"atMobiles": [OFFICER], "isAtAll": False}
    assert body["markdown"]["text"].endswith(f"@{OFFICER}")  # DingTalk shows a mention only with @mobile in the text
    assert "望海社区" in body["markdown"]["text"]


def test_dingtalk_without_a_secret_leaves_the_url_alone(message):
    request = nc.dingtalk_request(message, url="https://oapi.dingtalk.com/robot/send?access_token=abc",
                                  secret=None, timestamp_ms=1)
    assert request.url == "https://oapi.dingtalk.com/robot/send?access_token=abc"


def test_feishu_post_signed_in_the_body(message):
    request = nc.feishu_request(message, url="https://open.feishu.cn/open-apis/bot/v2/hook/x", secret="demo",
                                timestamp_s=1599360473)
    body = request.json()
    assert (body["timestamp"], body["sign"]) == ("1599360473", "l1N0gAcBjdwBvGm1xMjOF0XSyaLRpR7tuO5dHfhAYc8=")
    assert body["msg_type"] == "post"
    post = body["content"]["post"]["zh_cn"]
    assert post["title"] == message.title
    assert all(isinstance(row, list) and row for row in post["content"])
    assert post["content"][-1] == [{"tag": "a", "text": "查看工单", "href": message.link}]
    assert {"tag": "text", "text": "社区：望海社区"} in [row[0] for row in post["content"]]


def test_feishu_body_stays_under_20_kb(config):
    message = nc.render(make_ticket(description="水" * 20000), "dispatched", config.district, BASE, "dispatch")
    request = nc.feishu_request(message, url="https://x/hook", secret="demo", timestamp_s=1)
    assert len(request.body) <= nc.FEISHU_BODY_LIMIT
    assert "已截断" in request.body.decode()


def test_wecom_markdown_and_mentions_in_a_text_message(message):
    markdown, mention = nc.wecom_requests(message, url="https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k",
                                          mobiles=[OFFICER])
    body = markdown.json()
    assert body["msgtype"] == "markdown" and set(body["markdown"]) == {"content"}
    assert '<font color="warning">' in body["markdown"]["content"]
    text = mention.json()
    assert text["msgtype"] == "text" and text["text"]["mentioned_mobile_list"] == [OFFICER]
    # Without mentions: the markdown message alone.
    assert nc.wecom_requests(message, url=markdown.url) == [markdown]


@pytest.mark.parametrize("filler", ["积水", "a积水", "ab积水"])  # every alignment of 3-byte characters
def test_wecom_content_fits_4096_bytes_cut_between_characters(config, filler):
    message = nc.render(make_ticket(description=filler * 3000), "escalated", config.district, BASE, "dispatch")
    [request] = nc.wecom_requests(message, url="https://x")
    content = request.json()["markdown"]["content"]
    assert len(content.encode("utf-8")) <= nc.WECOM_MARKDOWN_LIMIT
    assert len(content.encode("utf-8")) > nc.WECOM_MARKDOWN_LIMIT - 3
    assert content.endswith(nc.TRUNCATED) and "\ufffd" not in content


def test_truncate_utf8_keeps_short_text_and_refuses_a_limit_below_the_marker():
    assert nc.truncate_utf8("积水", 6) == "积水"
    assert nc.truncate_utf8("积水积水", 7, "…") == "积…"
    with pytest.raises(ValueError):
        nc.truncate_utf8("积水" * 10, 2, "…")


def test_webhook_body_is_versioned_and_its_signature_verifies(message):
    ticket = make_ticket()
    request = nc.webhook_request(message, [(message, nc.ticket_record(ticket))], url="https://ops.example/hook", secret="s3cret")
    body = request.json()
    assert (body["version"], body["event"], body["id"]) == ("1", "dispatched", "T-20260512-0001:dispatched:dispatch")
    assert body["ticket"]["ticket_id"] == ticket.ticket_id and body["ticket"]["severity"] == "red"
    assert body["ticket"]["accept_due"] == "2026-05-12T01:45:00Z"
    assert "history" not in body["ticket"]
    expected = hmac.new(b"s3cret", request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-SOC-Signature"] == f"sha256={expected}"
    # Deterministic: the same notification builds the same bytes.
    assert nc.webhook_request(message, [(message, nc.ticket_record(ticket))], url="https://ops.example/hook", secret="s3cret") == request


@pytest.mark.parametrize("event", EVENTS)
@pytest.mark.parametrize("title", ["短标题", "望海路与滨海大道交叉口严重积水导致多车熄火交通中断需紧急排水" * 3])
def test_sms_text_is_at_most_70_characters(config, event, title):
    message = nc.render(make_ticket(title=title), event, config.district, BASE, "dispatch")
    request = nc.sms_request(message.id, nc.sms_text(message, config.district), url="https://sms.example/send",
                             phones=[OFFICER], secret="k")
    body = request.json()
    assert len(body["text"]) <= nc.SMS_LIMIT
    assert body["text"].startswith("【海湾街道】红色I级")
    assert body["phones"] == [OFFICER]
    assert request.headers["X-SOC-Signature"] == nc.webhook_signature("k", request.body)


def test_email_is_plain_utf8_text(message):
    mail = nc.email_message(message, sender="soc@haiwan.example", recipients=["a@x.example", "b@x.example"], at=AT)
    assert mail["Subject"] == message.title and mail["To"] == "a@x.example, b@x.example"
    assert mail.get_content_type() == "text/plain" and mail.get_content_charset() == "utf-8"
    assert "责任部门：街道三防办" in mail.get_content()
    assert mail["Message-ID"] == "<T-20260512-0001%3Adispatched%3Adispatch@soc.local>"


def every_channel_body(config, message, ticket) -> list[bytes]:
    """What each channel type would send for the message, as bytes (the webhook's fourth)."""
    return [
        nc.dingtalk_request(message, url="https://x?access_token=a", secret="s", timestamp_ms=1).body,
        *(r.body for r in nc.wecom_requests(message, url="https://x")),
        nc.feishu_request(message, url="https://x", secret="s", timestamp_s=1).body,
        nc.webhook_request(message, [(message, nc.ticket_record(ticket))], url="https://x", secret="s").body,
        nc.sms_request(message.id, nc.sms_text(message, config.district), url="https://x", phones=[]).body,
        nc.email_message(message, sender="a@b.example", recipients=["c@d.example"]).as_bytes(),
    ]


def test_no_phone_number_from_the_ticket_appears_in_any_body(config, message):
    ticket = make_ticket()
    bodies = every_channel_body(config, message, ticket)
    for body in bodies:
        digits = re.sub(r"\D", "", body.decode("utf-8", errors="replace"))
        for phone in (CITIZEN, LANDLINE):
            assert re.sub(r"\D", "", phone) not in digits
    assert "139****5678" in json.loads(bodies[3])["ticket"]["title"]


_NUMERALS = {c: str(i) for script in ("〇一二三四五六七八九", "零幺二三四五六七八九", "零壹贰叁肆伍陆柒捌玖")
             for i, c in enumerate(script)}


@pytest.mark.parametrize("written, digits", [
    ("1 3 9 1 2 3 4 5 6 7 8", "13912345678"), ("139 - 1234 - 5678", "13912345678"),
    ("139、1234、5678", "13912345678"), ("139\u200b1234\n5678", "13912345678"),
    ("幺三九幺二三四五六七八", "13912345678"), ("壹叁玖壹贰叁肆伍陆柒捌", "13912345678"),
    ("2688 1234", "26881234"), ("44030519900101123X", "44030519900101123"), ("zhang.san@example.com", "zhang.san"),
])
def test_no_written_form_from_the_ticket_appears_in_any_body(config, written, digits):
    ticket = make_ticket(title=f"望海路积水，市民{written}来电", description=f"联系人{written}，车辆涉水熄火")
    message = nc.render(ticket, "dispatched", config.district, BASE, "dispatch")
    bodies = every_channel_body(config, message, ticket)
    for body in bodies:
        text = body.decode("utf-8", errors="replace")
        if text.startswith("{"):  # JSON: its escapes read
            text = json.dumps(json.loads(text), ensure_ascii=False)
        # The digits of each stretch a mask, a clause or a field ends, in any script.
        found = ["".join(_NUMERALS.get(c) or str(unicodedata.decimal(c)) for c in part
                         if c in _NUMERALS or unicodedata.decimal(c, None) is not None)
                 for part in re.split(r'[*，："|]', text)]
        assert not any(digits in f for f in found) and f"{digits}@" not in text, text


def test_unknown_event_is_refused(config):
    with pytest.raises(ValueError, match="unknown notification event 'sent'"):
        nc.render(make_ticket(), "sent", config.district, BASE, "dispatch")


@pytest.mark.parametrize("kind, status, body, failure", [
    ("dingtalk", 200, b'{"errcode":0,"errmsg":"ok"}', None),
    ("dingtalk", 200, b'{"errcode":310000,"errmsg":"sign not match"}', "dingtalk error 310000: sign not match"),
    ("wecom", 200, b'{"errcode":0,"errmsg":"ok"}', None),
    ("wecom", 200, b'{"errcode":45009,"errmsg":"api freq out of limit"}', "wecom error 45009: api freq out of limit"),
    ("feishu", 200, b'{"code":0,"msg":"success","data":{}}', None),
    ("feishu", 200, b'{"code":19021,"msg":"sign match fail or timestamp is not within one hour from current time"}',
     "feishu error 19021: sign match fail or timestamp is not within one hour from current time"),
    ("feishu", 200, b'{"StatusCode":0,"StatusMessage":"success"}', None),
    ("dingtalk", 200, b"<html>", "answer is not JSON"),
    ("wecom", 200, b"{}", "answer has no result code"),
    ("dingtalk", 502, b"", "HTTP 502"),
    ("webhook", 204, b"", None),
    ("webhook", 500, b"oops", "HTTP 500"),
    ("sms", 200, b"anything", None),
])
def test_delivery_failed_reads_each_vendors_answer(kind, status, body, failure):
    assert nc.delivery_failed(kind, status, body) == failure
