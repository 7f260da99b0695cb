"""One notification (a ticket and what happened to it) in each channel's own wire format. No I/O.

Each builder returns the exact request to send (method, URL with its query, headers, body bytes), or for
email an ``email.message.EmailMessage``; ``delivery_failed`` reads the vendor's answer. Times to sign with
are parameters, so a replay builds byte-identical requests.

Formats, as the vendors document them:

- **DingTalk custom robot** (自定义机器人): ``POST <webhook>&timestamp=<ms>&sign=<urlencoded sign>``, JSON
  ``{"msgtype": "markdown", "markdown": {"title", "text"}, "at": {"atMobiles": [...], "isAtAll": false}}``;
  ``sign = base64(HmacSHA256(key=secret, msg=timestamp_ms + "\\n" + secret))``. A mention shows only when
  the text also contains ``@<mobile>``, so mentioned mobiles are appended to the text. ``errcode != 0`` fails.
- **WeCom group robot** (企业微信群机器人): JSON ``{"msgtype": "markdown", "markdown": {"content"}}``, content
  at most 4,096 UTF-8 bytes. WeCom's markdown message takes no mobile mentions (``mentioned_mobile_list`` is
  a field of its *text* message only), so mentions go in a second, short ``text`` message carrying
  ``mentioned_mobile_list``. ``errcode != 0`` fails.
- **Feishu custom bot** (自定义机器人): JSON ``{"timestamp": "<s>", "sign", "msg_type": "post", "content":
  {"post": {"zh_cn": {"title", "content": [[{"tag": "text"|"a", ...}], ...]}}}}``; ``sign =
  base64(HmacSHA256(key=timestamp_s + "\\n" + secret, msg=""))``. Body at most 20 KB. A Feishu mention needs
  the person's open_id, not a mobile number: none are made yet. ``code != 0`` fails.
- **Generic webhook**, version 1: JSON (UTF-8, keys sorted, no spaces) ``{"version": "1", "id":
  "<ticket_id>:<event>:<key>", "event", "title", "text", "link", "ticket": {...}}`` (the key names the change:
  the command's event id, or what raised the severity; a digest's id is ``digest-<hash>``) where
  ``ticket`` is the Ticket record without its history, personal data masked; header ``X-SOC-Signature:
  sha256=<hex HMAC-SHA256 of the body bytes, key = the channel's secret>``. Receivers deduplicate on ``id``.
  Any 2xx is success.
- **SMS gateway** (generic HTTP): JSON ``{"phones": [...], "text": "<= 70 characters>", "id"}``, signed like
  the webhook when the channel has a secret. Any 2xx is success.
- **Email**: plain-text UTF-8 ``EmailMessage`` with Subject, From, To and a Message-ID derived from the
  notification id.

Every piece of ticket free text passes through ``mask_personal``; mentioned mobiles (from the duty roster) are
added afterwards, deliberately unmasked.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from handlers.privacy import mask_everywhere, mask_personal
from schemas.config import District
from schemas.enums import Escalation, Severity
from schemas.records import Ticket

SEVERITY_TEXT = {
    Severity.red: "红色（I级）",
    Severity.orange: "橙色（II级）",
    Severity.yellow: "黄色（III级）",
    Severity.blue: "蓝色（IV级）",
}
SEVERITY_SHORT = {Severity.red: "红色I级", Severity.orange: "橙色II级", Severity.yellow: "黄色III级",
                  Severity.blue: "蓝色IV级"}
# DingTalk markdown renders <font color>; WeCom's only knows info (green), comment (grey), warning (orange-red).
SEVERITY_COLOUR = {Severity.red: "#E02020", Severity.orange: "#FA6400", Severity.yellow: "#D4A100",
                   Severity.blue: "#1E6FD9"}
EVENT_TEXT = {
    "dispatched": "派遣",
    "severity_raised": "等级提升",
    "reminded": "催办",
    "escalated": "督办",
    "reported": "通报",
    "returned": "退回",
    "redispatched": "改派",
    "rework": "返工",
    "closed": "结案",
}
ESCALATION_TEXT = {Escalation.none: "未升级", Escalation.reminded: "催办", Escalation.escalated: "督办",
                   Escalation.reported: "通报"}
STATUS_TEXT = {"dispatched": "待签收", "accepted": "处置中", "resolved": "待核查", "closed": "已结案",
               "returned": "已退回"}

WECOM_MARKDOWN_LIMIT = 4096  # bytes of UTF-8
DINGTALK_TEXT_LIMIT = 20000  # bytes; DingTalk refuses longer messages
FEISHU_BODY_LIMIT = 20 * 1024
SMS_LIMIT = 70  # characters: one SMS segment of Chinese text
TRUNCATED = "\n…（内容过长，已截断，详见工单）"
JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}


@dataclass(frozen=True)
class HttpRequest:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass(frozen=True)
class Message:
    """A notification rendered once, in Chinese, for every channel."""

    id: str
    event: str
    severity: Severity
    title: str
    # (label, value) lines, free text already masked
    fields: list[tuple[str, str]] = field(default_factory=list)
    link: str = ""
    description: str = ""


def _local(at: datetime | None, district: District) -> str:
    return at.astimezone(district.tz).strftime("%Y-%m-%d %H:%M") if at else "—"


def render(ticket: Ticket, event: str, district: District, inbox_base_url: str, key: str, said: str = "") -> Message:
    """The Chinese text of one notification: colour and level, title, the change as the history says it
    (`said`, handlers/wording.py), community, department, deadlines in the district's time zone,
    occurrences, escalation step, and the ticket's link in the inbox. `key` names the change among the
    ticket's changes of that event (handlers/notify.py)."""
    if event not in EVENT_TEXT:
        raise ValueError(f"unknown notification event {event!r}")
    community = district.communities.get(ticket.community) if ticket.community else None
    department = district.departments.get(ticket.department)
    title = mask_personal(ticket.title)
    fields = [
        ("事件", EVENT_TEXT[event]),
        *([("经过", said)] if said else []),
        ("等级", SEVERITY_TEXT[ticket.severity]),
        ("社区", community.name if community else (mask_personal(ticket.community or "") or "辖区外/未定位")),
        ("责任部门", department.name if department else ticket.department),
        ("状态", STATUS_TEXT.get(ticket.status.value, ticket.status.value)),
        ("签收期限", _local(ticket.accept_due, district)),
        ("办结期限", _local(ticket.resolve_due, district)),
        ("发生次数", str(ticket.occurrences)),
        ("督办环节", ESCALATION_TEXT[ticket.escalation]),
        ("工单号", ticket.ticket_id),
    ]
    link = f"{inbox_base_url.rstrip('/')}/inbox#ticket={quote(ticket.ticket_id, safe='')}"
    return Message(
        id=f"{ticket.ticket_id}:{event}:{key}",
        event=event,
        severity=ticket.severity,
        title=f"【{SEVERITY_SHORT[ticket.severity]}·{EVENT_TEXT[event]}】{title}",
        fields=fields,
        link=link,
        description=mask_personal(ticket.description),
    )


def plain_text(message: Message) -> str:
    lines = [message.title, *(f"{label}：{value}" for label, value in message.fields)]
    if message.description:
        lines.append(f"情况：{message.description}")
    lines.append(f"查看工单：{message.link}")
    return "\n".join(lines)


def truncate_utf8(text: str, limit: int, marker: str = TRUNCATED) -> str:
    """text if it fits in limit UTF-8 bytes, else its longest prefix that fits with marker, cut between characters."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    room = limit - len(marker.encode("utf-8"))
    if room <= 0:
        raise ValueError("limit smaller than the truncation marker")
    # errors="ignore" drops a trailing partial character: the cut lands on a character boundary.
    return data[:room].decode("utf-8", errors="ignore") + marker


def _json_body(value: dict) -> bytes:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode("utf-8")


def _with_query(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = urlencode([*parse_qsl(parts.query, keep_blank_values=True), *params.items()])
    return urlunsplit(parts._replace(query=query))


# ------------------------------------------------------------------ signatures

def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """base64(HmacSHA256(key=secret, msg=timestamp + "\\n" + secret)), before URL encoding."""
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp_ms}\n{secret}".encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def feishu_sign(secret: str, timestamp_s: int) -> str:
    """base64(HmacSHA256(key=timestamp + "\\n" + secret, msg=""))."""
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode("utf-8"), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def webhook_signature(secret: str, body: bytes) -> str:
    """The X-SOC-Signature header value: sha256=<hex HMAC-SHA256 of the body>."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


# ------------------------------------------------------------------ vendors

def dingtalk_request(message: Message, *, url: str, secret: str | None, timestamp_ms: int,
                     mobiles: list[str] = ()) -> HttpRequest:
    colour = SEVERITY_COLOUR[message.severity]
    lines = [f"### <font color=\"{colour}\">{message.title}</font>",
             *(f"- **{label}**：{value}" for label, value in message.fields)]
    if message.description:
        lines.append(f"> {message.description}")
    lines.append(f"[查看工单]({message.link})")
    text = "\n\n".join(lines)
    mention = " ".join(f"@{m}" for m in mobiles)
    room = DINGTALK_TEXT_LIMIT - len(mention.encode("utf-8")) - 2
    text = truncate_utf8(text, room) + (f"\n\n{mention}" if mention else "")
    body = {
        "msgtype": "markdown",
        "markdown": {"title": message.title, "text": text},
        "at": {"atMobiles": list(mobiles), "isAtAll": False},
    }
    full_url = url
    if secret:
        full_url = _with_query(url, {"timestamp": str(timestamp_ms), "sign": dingtalk_sign(secret, timestamp_ms)})
    return HttpRequest("POST", full_url, dict(JSON_HEADERS), _json_body(body))


def wecom_requests(message: Message, *, url: str, mobiles: list[str] = ()) -> list[HttpRequest]:
    """The markdown message, then (only with mentions) a short text message carrying mentioned_mobile_list."""
    colour = "warning" if message.severity in (Severity.red, Severity.orange) else "info"
    lines = [f"### <font color=\"{colour}\">{message.title}</font>",
             *(f"> {label}：<font color=\"comment\">{value}</font>" for label, value in message.fields)]
    if message.description:
        lines.append(f"情况：{message.description}")
    lines.append(f"[查看工单]({message.link})")
    content = truncate_utf8("\n".join(lines), WECOM_MARKDOWN_LIMIT)
    requests = [HttpRequest("POST", url, dict(JSON_HEADERS),
                            _json_body({"msgtype": "markdown", "markdown": {"content": content}}))]
    if mobiles:
        notice = f"请关注：{message.title}"
        requests.append(HttpRequest("POST", url, dict(JSON_HEADERS), _json_body(
            {"msgtype": "text", "text": {"content": truncate_utf8(notice, 2048, "…"),
                                         "mentioned_mobile_list": list(mobiles)}})))
    return requests


def feishu_request(message: Message, *, url: str, secret: str | None, timestamp_s: int) -> HttpRequest:
    rows = [[{"tag": "text", "text": f"{label}：{value}"}] for label, value in message.fields]
    if message.description:
        rows.append([{"tag": "text", "text": f"情况：{message.description}"}])
    rows.append([{"tag": "a", "text": "查看工单", "href": message.link}])
    body: dict = {"msg_type": "post", "content": {"post": {"zh_cn": {"title": message.title, "content": rows}}}}
    if secret:
        body = {"timestamp": str(timestamp_s), "sign": feishu_sign(secret, timestamp_s), **body}
    data = _json_body(body)
    if len(data) > FEISHU_BODY_LIMIT and message.description:
        # Only the free text can be long: cut it until the body fits.
        keep = len(message.description.encode("utf-8"))
        while len(data) > FEISHU_BODY_LIMIT:
            keep -= len(data) - FEISHU_BODY_LIMIT + 64
            rows[-2] = [{"tag": "text", "text": "情况：" + truncate_utf8(message.description, max(keep, 128))}]
            data = _json_body(body)
    return HttpRequest("POST", url, dict(JSON_HEADERS), data)


def ticket_record(ticket: Ticket) -> dict:
    """The ticket as receivers get it: no history, personal data masked."""
    return mask_everywhere(ticket.model_dump(mode="json", exclude={"history", "extension"}))


def webhook_body(message: Message, items: list[tuple[Message, dict]]) -> bytes:
    """One notification: its message and "ticket" (a ticket_record). A digest (event "digest"): "items",
    each with its own id, event, title, link and ticket."""
    body = {"version": "1", "id": message.id, "event": message.event, "title": message.title,
            "text": plain_text(message), "link": message.link}
    if message.event == "digest":
        body["items"] = [{"id": m.id, "event": m.event, "title": m.title, "link": m.link, "ticket": record}
                         for m, record in items]
    else:
        body["ticket"] = items[0][1]
    return _json_body(body)


def webhook_request(message: Message, items: list[tuple[Message, dict]], *, url: str, secret: str) -> HttpRequest:
    body = webhook_body(message, items)
    headers = {**JSON_HEADERS, "X-SOC-Signature": webhook_signature(secret, body)}
    return HttpRequest("POST", url, headers, body)


def _fit_sms(prefix: str, title: str, suffix: str) -> str:
    room = SMS_LIMIT - len(prefix) - len(suffix)
    if room < len(title):
        title = title[:max(room - 1, 0)] + "…" if room > 1 else ""
    text = prefix + title + suffix
    return text if len(text) <= SMS_LIMIT else text[:SMS_LIMIT - 1] + "…"


def sms_text(message: Message, district: District) -> str:
    """At most 70 characters: 【district】level·event：title，deadline; the title is cut first."""
    deadline = dict(message.fields).get("签收期限", "")
    prefix = f"【{district.name}】{SEVERITY_SHORT[message.severity]}{EVENT_TEXT[message.event]}："
    suffix = f"，请于{deadline[5:]}前签收" if message.event in ("dispatched", "redispatched", "reminded") else ""
    return _fit_sms(prefix, message.title.split("】", 1)[-1], suffix + "，详见工单系统")


def sms_digest_text(count: int, severity: Severity, first_title: str, district: District) -> str:
    """A digest in at most 70 characters: how many, the most severe, the first title."""
    return _fit_sms(f"【{district.name}】{count}条工单通知，最高{SEVERITY_SHORT[severity]}：",
                    first_title.split("】", 1)[-1], "等，详见工单系统")


def sms_request(message_id: str, text: str, *, url: str, phones: list[str], secret: str | None = None) -> HttpRequest:
    body = _json_body({"id": message_id, "phones": list(phones), "text": text})
    headers = dict(JSON_HEADERS)
    if secret:
        headers["X-SOC-Signature"] = webhook_signature(secret, body)
    return HttpRequest("POST", url, headers, body)


def email_message(message: Message, *, sender: str, recipients: list[str], at: datetime | None = None,
                  domain: str = "soc.local") -> EmailMessage:
    mail = EmailMessage()
    mail["Subject"] = message.title
    mail["From"] = sender
    mail["To"] = ", ".join(recipients)
    mail["Message-ID"] = f"<{quote(message.id, safe='')}@{domain}>"
    if at is not None:
        mail["Date"] = format_datetime(at)
    mail.set_content(plain_text(message), charset="utf-8")
    return mail


# ------------------------------------------------------------------ answers

def delivery_failed(channel_type: str, status: int, body: bytes) -> str | None:
    """None when the vendor accepted the message, else why not (one line, for the notification log)."""
    if not 200 <= status < 300:
        return f"HTTP {status}"
    if channel_type == "dingtalk_card":
        # DingTalk's app API answers {"success": true, "result": {...}}, or an HTTP error with {"code", "message"}.
        try:
            answer = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return "answer is not JSON"
        return None if isinstance(answer, dict) and answer.get("success") is True else "dingtalk card not sent"
    if channel_type not in ("dingtalk", "wecom", "wecom_card", "feishu", "feishu_card"):
        return None
    try:
        answer = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return "answer is not JSON"
    if not isinstance(answer, dict):
        return "answer is not a JSON object"
    if channel_type in ("dingtalk", "wecom", "wecom_card"):
        code, text = answer.get("errcode"), answer.get("errmsg", "")
    else:
        # Feishu answers {"code", "msg"}; older bot endpoints {"StatusCode", "StatusMessage"}.
        code = answer.get("code", answer.get("StatusCode"))
        text = answer.get("msg", answer.get("StatusMessage", ""))
    if code is None:
        return "answer has no result code"
    if code != 0:
        return f"{channel_type} error {code}: {text}"
    return None
