"""Raw bytes -> Incident, or a rejection with a reason from a closed set (a metric label)."""
from __future__ import annotations

import base64
import hashlib
from dataclasses import replace
from datetime import datetime

import orjson
from pydantic import ValidationError

from handlers.base import Context, Heard
from handlers.geo import community_at
from handlers.privacy import mask_everywhere, mask_phones
from handlers.registry import SOURCES
from schemas.records import DeadLetter, FieldError, Incident

MAX_PAYLOAD_BYTES = 1024 * 1024
# Kept of a rejected value: enough to diagnose, small enough for the broker's default 1 MiB limit.
DEADLETTER_RAW_BYTES = 256 * 1024

REASONS = ("too_large", "not_utf8", "not_json", "not_object", "missing_field", "wrong_type",
           "unknown_value", "out_of_range", "invalid", "handler_error",
           # CAP alerts (handlers/cap.py)
           "not_xml", "forbidden_xml", "not_actual", "unknown_reference", "outside_district")
_REASON_BY_PYDANTIC_TYPE = {
    "missing": "missing_field",
    "enum": "unknown_value",
    "literal_error": "unknown_value",
    "greater_than": "out_of_range",
    "greater_than_equal": "out_of_range",
    "less_than": "out_of_range",
    "less_than_equal": "out_of_range",
    "finite_number": "out_of_range",
    "string_too_long": "out_of_range",
    "string_too_short": "out_of_range",
    "datetime_from_date_parsing": "wrong_type",
    "int_from_float": "wrong_type",
}


class Rejected(Exception):
    def __init__(self, reason: str, message: str, field_errors: list[FieldError] | None = None):
        assert reason in REASONS
        self.reason = reason
        self.message = message
        self.field_errors = field_errors or []
        super().__init__(f"{reason}: {message}")


def decode(raw: bytes | None) -> dict:
    if raw is None:
        raise Rejected("not_object", "empty message (null value)")
    if len(raw) > MAX_PAYLOAD_BYTES:
        raise Rejected("too_large", f"{len(raw)} bytes, limit {MAX_PAYLOAD_BYTES}")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected("not_utf8", str(exc)) from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Rejected("not_json", str(exc)) from None
    if not isinstance(data, dict):
        raise Rejected("not_object", f"expected a JSON object, got {type(data).__name__}")
    return data


def _reason(error_type: str) -> str:
    if error_type in _REASON_BY_PYDANTIC_TYPE:
        return _REASON_BY_PYDANTIC_TYPE[error_type]
    if error_type.endswith(("_type", "_parsing")) or error_type.startswith("timezone"):
        return "wrong_type"
    return "invalid"


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
        incident_id=f"{source[:4]}-{digest(source, found.source_ref)}",
        source=source,
        category=found.category,
        subcategory=found.subcategory,
        severity=found.severity,
        title=mask_phones(found.title),
        description=mask_phones(found.description),
        lat=found.lat,
        lon=found.lon,
        community=community_at(ctx.config.district.communities, found.lat, found.lon),
        observed_at=found.observed_at,
        received_at=ctx.received_at,
        dedup_key=key,
        source_ref=mask_phones(found.source_ref),  # a case number can carry a phone number too
        details=mask_everywhere(found.details),
    ), heard


def dead_letter(topic: str, partition: int | None, offset: int | None, raw: bytes | None,
                rejected: Rejected, received_at: datetime) -> DeadLetter:
    text = b64 = None
    if raw is not None:
        clipped = raw[:DEADLETTER_RAW_BYTES]
        # Personal data is masked here too: a rejected 12345 case still carries the citizen's number.
        try:
            text = mask_phones(clipped.decode("utf-8"))
        except UnicodeDecodeError as exc:
            if len(clipped) < len(raw) and exc.reason == "unexpected end of data":
                # UTF-8 text clipped in the middle of a character: keep it as text.
                text = mask_phones(clipped[:exc.start].decode("utf-8"))
            else:
                # Not UTF-8 (GBK from an old system, say): its ASCII digits are masked byte for byte.
                b64 = base64.b64encode(mask_phones(clipped.decode("latin-1")).encode("latin-1")).decode("ascii")
    return DeadLetter(source_topic=topic, partition=partition, offset=offset, received_at=received_at,
                      error_type=rejected.reason, message=mask_phones(rejected.message),
                      field_errors=rejected.field_errors, raw_text=text, raw_base64=b64,
                      raw_size=0 if raw is None else len(raw),
                      raw_truncated=raw is not None and len(raw) > DEADLETTER_RAW_BYTES)
