"""Personal data written in every form (phones split any way, in any script or Chinese numerals, landlines, local
numbers, resident ID numbers, e-mail addresses) reaches nothing unmasked: a city report, an Open311 request, a
comment and a return reason written by people, and rejected reports, through the real stack; then every Redis
key of the stack, every record on every topic the pipeline writes (tickets, their events and changelogs, the
audit trail, dead letters, incidents, notifications) and the worker's log are read back."""
from __future__ import annotations

import base64
import json
import re
import unicodedata
import urllib.parse
import urllib.request

import pytest
from kafka import KafkaConsumer

from tests.integration.payloads import Builder
from tests.support import CONFIG, marker, poll, running_pipeline

pytestmark = pytest.mark.integration

APP_KEY = f"test-app-{marker()}"

# (the number, as someone wrote it): the forms that passed the old masker and the usual ones.
MOBILES = [
    ("13512340001", "1 3 5 1 2 3 4 0 0 0 1"),
    ("13612340002", "1-3-6-1-2-3-4-0-0-0-2"),
    ("13712340003", "137  1234  0003"),
    ("13812340004", "138 - 1234 - 0004"),
    ("13912340005", "139、1234、0005"),
    ("15012340006", "150\u200b1234\u200b0006"),
    ("15112340007", "1511\n2340007"),
    ("15212340008", "幺五二幺二三四〇〇〇八"),
    ("15312340009", "壹伍叁壹贰叁肆零零零玖"),
    ("15512340010", "１５５ １２３４ ００１０"),
    ("15612340011", "١٥٦١٢٣٤٠٠١١"),
    ("18612340012", "+86 186 1234 0012"),
]
OTHERS = [
    ("26883401", "2688 3401"),                      # a local number
    ("075526883402", "（0755）2688 3402"),
    ("44030519900101234", "44030519900101234X"),    # a resident ID number (its X is not a digit)
    ("110105491231002", "110105 491231 002"),        # an old 15-digit one
]
EMAIL_LOCAL = "zhangsan.private"
NUMBERS = [digits for digits, _ in MOBILES + OTHERS]
# One form to a clause, the clauses apart: what a clerk or a citizen might type, all at once.
TEXT = "；".join(f"电话{w}" for _, w in MOBILES + OTHERS) + f"；邮箱{EMAIL_LOCAL}@example.com"
_NUMERALS = {c: str(i) for script in ("〇一二三四五六七八九", "零幺二三四五六七八九", "零壹贰叁肆伍陆柒捌玖")
             for i, c in enumerate(script)}


def _plain_digits(text: str) -> str:
    return "".join(_NUMERALS.get(c) or str(unicodedata.decimal(c)) for c in text
                   if c in _NUMERALS or unicodedata.decimal(c, None) is not None)


def leaks(text: str) -> list[str]:
    """The numbers (and the e-mail's local part) found whole in one clause of a text: a mask (****) and the
    clause marks split it, so what one masked number keeps never joins another's."""
    found = [n for part in re.split(r"[*；]", text) for n in NUMBERS if n in _plain_digits(part)]
    return found + ([EMAIL_LOCAL] if EMAIL_LOCAL in text else [])


def escaped_digits(literal: str) -> str:
    """A JSON string literal with its digits written as escapes (\\u0031), as some senders do."""
    return re.sub(r"\\u[0-9a-fA-F]{4}|\\.|([0-9])", lambda m: f"\\u{ord(m[1]):04x}" if m[1] else m[0], literal)


def strings(value) -> list[str]:
    """Every string in a decoded JSON value, keys too; bytes that are not JSON as their text; a dead letter's
    bytes (raw_base64) decoded."""
    if isinstance(value, (bytes, bytearray)):
        try:
            return strings(json.loads(value))
        except ValueError:
            return [value.decode("utf-8", "replace")]
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        kept = base64.b64decode(value["raw_base64"]) if value.get("raw_base64") else b""
        return [s for k, v in value.items() for s in [str(k), *strings(v)]] + (
            [kept.decode("gb18030", "replace"), kept.decode("latin-1")] if kept else [])
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return [str(value)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    with running_pipeline(tmp_path_factory.mktemp("personal"), SOC_OPEN311_KEY_CITIZEN_APP=APP_KEY) as running:
        yield running


def post_open311(stack, fields: dict) -> tuple[int, object]:
    request = urllib.request.Request(f"{stack.worker.url}/open311/v2/requests.json", method="POST",
                                     data=urllib.parse.urlencode(fields).encode(),
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
    with urllib.request.urlopen(request, timeout=15) as response:
        return response.status, json.loads(response.read())


def test_no_written_form_reaches_redis_a_topic_or_the_log_unmasked(stack, unique):
    build = Builder(CONFIG, unique)  # letters only: a hex marker can read as a phone number and be masked
    # A citizen's report, its number in every field people fill.
    report = build.city(description=TEXT, address=f"荔园路12号 {MOBILES[0][1]}", reporter_phone=MOBILES[1][1],
                        attributes={"联系人": TEXT})
    stack.send("soc.raw.city", report)
    [ticket] = poll(lambda: stack.tickets_where(lambda t: t.source_ref == report["case_no"]), 30, "the ticket")

    # People write the numbers too: a comment, then a return reason.
    path = f"/api/tickets/{ticket.ticket_id}"
    assert stack.post(f"{path}/comment", ticket.department, {"note": TEXT})[0] in (200, 202)
    assert stack.post(f"{path}/return", ticket.department, {"reason": TEXT})[0] in (200, 202)

    # A request from the citizens' app.
    lat, lon = build.point("guiwan")
    status, [answer] = post_open311(stack, {
        "api_key": APP_KEY, "service_code": "road_damage", "lat": f"{lat}", "long": f"{lon}",
        "address_string": f"路口 {MOBILES[2][1]}", "description": TEXT, "phone": MOBILES[3][1],
        "email": f"{EMAIL_LOCAL}@example.com", "attribute[联系]": TEXT})
    assert status == 201
    poll(lambda: stack.tickets_where(lambda t: t.source_ref == answer["service_request_id"]), 30, "the request's ticket")

    # Rejected reports: JSON that escapes its digits (\u0031) and splits them (\n), JSON cut short, GBK bytes.
    rejected = [json.dumps({**build.city(), "lat": 91, "description": TEXT}, ensure_ascii=True).replace(
                    json.dumps(TEXT), escaped_digits(json.dumps(TEXT))).encode(),
                json.dumps({**build.city(), "description": TEXT}, ensure_ascii=False)[:-40].encode(),
                json.dumps({**build.city(), "lat": 91, "description": TEXT}, ensure_ascii=False).encode("gb18030")]
    for raw in rejected:
        stack.send("soc.raw.city", raw)

    def everything_landed() -> bool:
        current = stack.ticket(ticket.ticket_id)
        actions = {h.action for h in current.history} if current else set()
        letters = [r for r in stack.read_topic("soc.deadletter") if r.value and b"soc.raw.city" in r.value]
        return {"comment", "return"} <= actions and len(letters) >= len(rejected)
    poll(everything_landed, 60, "the comment, the return and the dead letters")

    found: dict[str, list[str]] = {}
    for key in stack.redis.scan_iter(f"{stack.stack.redis_prefix}:*"):
        kind = stack.redis.type(key).decode()
        values = {"string": lambda: [stack.redis.get(key)],
                  "hash": lambda: [v for kv in stack.redis.hgetall(key).items() for v in kv],
                  "zset": lambda: stack.redis.zrange(key, 0, -1),
                  "set": lambda: list(stack.redis.smembers(key)),
                  "list": lambda: stack.redis.lrange(key, 0, -1),
                  "stream": lambda: [v for _, entry in stack.redis.xrange(key) for kv in entry.items() for v in kv]}
        for value in values[kind]():
            for text in strings(value):
                if leaks(text):
                    found.setdefault(f"redis {key.decode()}", []).extend(leaks(text))

    probe = KafkaConsumer(bootstrap_servers=stack.stack.bootstrap)
    topics = sorted(t for t in probe.topics() if not t.startswith(("soc.raw.", "__")))
    probe.close()
    assert {"soc.tickets", "soc.ticket-events", "soc.audit", "soc.deadletter", "soc.incidents"} <= set(topics)
    for topic in topics:
        for record in stack.read_topic(topic):
            for text in strings(record.value or b"") + strings(record.key or b""):
                if leaks(text):
                    found.setdefault(f"topic {topic}", []).extend(leaks(text))

    for line in stack.worker.process.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        for text in strings(line.encode()):
            if leaks(text):
                found.setdefault("worker log", []).extend(leaks(text))

    assert found == {}
    # And what was kept is the masked form, where people read it.
    history = {h.action: h.note for h in stack.ticket(ticket.ticket_id).history}
    assert "电话135****0001" in history["comment"] and "邮箱z***@example.com" in history["return"]
    assert "440305**********4X" in stack.ticket(ticket.ticket_id).description
