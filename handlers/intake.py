"""Raw bytes -> Incident, or a rejection with a reason from a closed set (a metric label)."""
from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import replace
from enum import StrEnum
from datetime import datetime

import orjson
from pydantic import ValidationError

from handlers.base import Context, Heard
from handlers.geo import community_at
from handlers.privacy import mask_everywhere, mask_personal, never_masked
from handlers.registry import SOURCES
from schemas.records import DeadLetter, FieldError, Incident
from schemas.times import TIME_OUT_OF_RANGE

MAX_PAYLOAD_BYTES = 1024 * 1024
# Kept of a rejected value: enough to diagnose, small enough for the broker's default 1 MiB limit.
DEADLETTER_RAW_BYTES = 256 * 1024


class RejectReason(StrEnum):
    """Why an input went to the dead-letter topic: a closed set, a metric label and `error_type` on the wire."""

    too_large = "too_large"
    not_utf8 = "not_utf8"
    not_json = "not_json"
    not_object = "not_object"
    missing_field = "missing_field"
    wrong_type = "wrong_type"
    unknown_value = "unknown_value"
    out_of_range = "out_of_range"
    invalid = "invalid"
    handler_error = "handler_error"
    # CAP alerts (handlers/cap.py)
    not_xml = "not_xml"
    forbidden_xml = "forbidden_xml"
    not_actual = "not_actual"
    unknown_reference = "unknown_reference"
    outside_district = "outside_district"
    expired = "expired"
    in_future = "in_future"


R = RejectReason
_REASON_BY_PYDANTIC_TYPE = {
    "missing": R.missing_field,
    "enum": R.unknown_value,
    "literal_error": R.unknown_value,
    "greater_than": R.out_of_range,
    "greater_than_equal": R.out_of_range,
    "less_than": R.out_of_range,
    "less_than_equal": R.out_of_range,
    "finite_number": R.out_of_range,
    TIME_OUT_OF_RANGE: R.out_of_range,
    "string_too_long": R.out_of_range,
    "string_too_short": R.out_of_range,
    "datetime_from_date_parsing": R.wrong_type,
    "int_from_float": R.wrong_type,
}


class Rejected(Exception):
    def __init__(self, reason: RejectReason, message: str, field_errors: list[FieldError] | None = None):
        self.reason = RejectReason(reason)
        self.message = message
        self.field_errors = field_errors or []
        super().__init__(f"{reason}: {message}")


def decode(raw: bytes | None) -> dict:
    if raw is None:
        raise Rejected(R.not_object, "empty message (null value)")
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise Rejected(R.too_large, f"{len(raw)} bytes, limit {MAX_PAYLOAD_BYTES}")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected(R.not_utf8, str(exc)) from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Rejected(R.not_json, str(exc)) from None
    if not isinstance(data, dict):
        raise Rejected(R.not_object, f"expected a JSON object, got {type(data).__name__}")
    return data


def _reason(error_type: str) -> RejectReason:
    if error_type in _REASON_BY_PYDANTIC_TYPE:
        return _REASON_BY_PYDANTIC_TYPE[error_type]
    if error_type.endswith(("_type", "_parsing")) or error_type.startswith("timezone"):
        return R.wrong_type
    return R.invalid


def validate(source: str, data: dict):
    try:
        return SOURCES[source].parse(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        field_errors = [FieldError(loc=".".join(str(p) for p in e["loc"]) or "(payload)",
                                   msg=e["msg"][:300], type=e["type"]) for e in errors[:20]]
        first = field_errors[0]
        raise Rejected(_reason(first.type), f"{first.loc}: {first.msg}", field_errors) from None


def digest(*parts: str, size: int = 8) -> str:
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=size).hexdigest()


def to_incident(source: str, raw: bytes | None, ctx: Context) -> Incident | None:
    """Parse and classify one raw message. None: valid, but nothing to act on."""
    return parsed(source, raw, ctx)[0]


def parsed(source: str, raw: bytes | None, ctx: Context) -> tuple[Incident | None, Heard | None]:
    """One raw message: its incident (None: nothing to act on) and the device it shows alive, if the
    source's devices report periodically (a normal reading is a heartbeat too)."""
    module = SOURCES[source]
    payload = validate(source, decode(raw))
    heard = module.device(payload, ctx)
    found = module.classify(payload, ctx)
    calm = found is None or found.severity is None
    key = None if calm else f"{source}:{found.category.value}:{found.identity}"
    if heard is not None and heard.kind in ctx.config.rules.all_clear:
        heard = replace(heard, calm=calm, alarm_key=key)
    if calm:
        return None, heard
    return Incident(
        incident_id=never_masked(f"{source[:4]}-{digest(source, found.source_ref)}"),
        source=source,
        category=found.category,
        subcategory=found.subcategory,
        severity=found.severity,
        title=mask_personal(found.title),
        description=mask_personal(found.description),
        lat=found.lat,
        lon=found.lon,
        community=community_at(ctx.config.district.communities, found.lat, found.lon),
        observed_at=found.observed_at,
        received_at=ctx.received_at,
        dedup_key=key,
        source_ref=mask_personal(found.source_ref),  # a case number can carry a phone number too
        details=mask_everywhere(found.details),
    ), heard


# Escapes that spell a character in JSON (\u0031, \n) and XML (&#49;, &#x31;), read before masking.
_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})|\\([nrt])|&#(\d{1,7});|&#[xX]([0-9a-fA-F]{1,6});")
_CONTROL = {"n": "\n", "r": "\r", "t": "\t"}


def _unescaped(match: re.Match) -> str:
    hex4, control, decimal, hex_ = match.groups()
    if control:
        return _CONTROL[control]
    code = int(hex4 or hex_, 16) if (hex4 or hex_) else int(decimal)
    return chr(code) if code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else match[0]


def _masked_text(text: str) -> str:
    """JSON decoded, masked value by value and written again; other text (JSON cut short, XML) masked with
    its escapes read."""
    try:  # the standard library's parser keeps integers of any size as they were written
        return json.dumps(mask_everywhere(json.loads(text)), ensure_ascii=False)
    except (ValueError, RecursionError):  # not JSON, or nested past what a copy is worth
        return mask_personal(_ESCAPE.sub(_unescaped, text))


def _masked_copy(clipped: bytes, cut: bool) -> tuple[str | None, str | None]:
    """What a dead letter keeps of a rejected value, as text or else base64, personal data masked on what the
    value says rather than how it is spelled."""
    try:
        return _masked_text(clipped.decode("utf-8")), None
    except UnicodeDecodeError as exc:
        if cut and exc.reason == "unexpected end of data":
            # UTF-8 text clipped in the middle of a character: kept as text.
            return _masked_text(clipped[:exc.start].decode("utf-8")), None
    # Not UTF-8: GB18030 (GBK) from an old system, which Chinese feeds use, else byte for byte as Latin-1;
    # masked as text and written back in the same encoding.
    for encoding in ("gb18030", "latin-1"):
        try:
            text = clipped.decode(encoding)
        except UnicodeDecodeError:
            continue
        return None, base64.b64encode(_masked_text(text).encode(encoding, "backslashreplace")).decode("ascii")
    raise AssertionError("Latin-1 decodes any bytes")


def dead_letter(topic: str, partition: int | None, offset: int | None, raw: bytes | None,
                rejected: Rejected, received_at: datetime) -> DeadLetter:
    # Personal data is masked here too: a rejected 12345 case still carries the citizen's number.
    text, b64 = (None, None) if raw is None else _masked_copy(raw[:DEADLETTER_RAW_BYTES],
                                                                 cut=len(raw) > DEADLETTER_RAW_BYTES)
    field_errors = [e.model_copy(update={"loc": mask_personal(e.loc), "msg": mask_personal(e.msg)})
                    for e in rejected.field_errors]
    return DeadLetter(source_topic=topic, partition=partition, offset=offset, received_at=received_at,
                      error_type=rejected.reason, message=mask_personal(rejected.message),
                      field_errors=field_errors, raw_text=text, raw_base64=b64,
                      raw_size=0 if raw is None else len(raw),
                      raw_truncated=raw is not None and len(raw) > DEADLETTER_RAW_BYTES)
