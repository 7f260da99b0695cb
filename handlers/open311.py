"""Open311 GeoReport v2: the service list, a citizen's request as a CityReport, and a request's status as
the GeoReport fields. No I/O.

service_code is the CityReport category, group its source ("city"). A request becomes a CityReport on
soc.raw.city with the calling client's channel (district.yaml `intake.open311`, mobile_app by default).
The service_request_id is a hash of the client, the request's content (service_code, place, description,
attributes, media_url, device_id, account_id) and its day in the district time zone: a client retrying the
same POST gets the same id and the same report, the same content on another day is a new request. The
reporter's phone goes into the report (masked when it is parsed); name, email and ids are not kept.
"""
from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from xml.etree.ElementTree import Element, SubElement, tostring

from handlers.city import LABEL
from handlers.geo import centroid
from handlers.intake import digest
from handlers.privacy import mask_everywhere, mask_personal, mask_phone, never_masked
from schemas.config import Config
from schemas.raw import CityCategory, CityReport
from schemas.records import Incident, Ticket

GROUP = "city"
MAX_ATTRIBUTES = 20
MEDIA_URL = re.compile(r"^https?://[^\s]{1,990}$")
KNOWN = {"api_key", "jurisdiction_id", "service_code", "lat", "long", "address_string", "address_id", "email",
         "device_id", "account_id", "first_name", "last_name", "phone", "description", "media_url"}
STATUS_NOTES = {"dispatched": "已派遣至{agency}", "accepted": "{agency}已签收，正在处置", "resolved": "已处置，待核查",
                "closed": "已核查结案", "returned": "重新派遣中"}
RECEIVED_NOTE = "已受理，正在分派"


class Invalid(Exception):
    """A request Open311 answers with [{"code", "description"}]."""

    def __init__(self, code: int, description: str):
        self.code, self.description = code, description
        super().__init__(description)


def services(config: Config) -> list[dict[str, Any]]:
    return [{"service_code": c.value, "service_name": LABEL[c], "description": f"城市管理：{LABEL[c]}",
             "metadata": False, "type": "realtime", "keywords": c.value.replace("_", ","), "group": GROUP}
            for c in CityCategory]


def as_xml(root: str, item: str, rows: Iterable[dict[str, Any]]) -> bytes:
    """GeoReport's XML form: <root><item><field>...</field></item></root>; booleans as true/false."""
    top = Element(root)
    for row in rows:
        element = SubElement(top, item)
        for name, value in row.items():
            SubElement(element, name).text = "" if value is None else (
                str(value).lower() if isinstance(value, bool) else str(value))
    return tostring(top, encoding="utf-8", xml_declaration=True)


@dataclass(frozen=True)
class ServiceRequest:
    service_code: CityCategory
    lat: float
    lon: float
    address: str
    description: str
    attributes: dict[str, str]
    media_url: str | None
    phone: str | None
    device: str  # device_id and account_id, only for the request's id


def _number(fields: dict[str, str], name: str, low: float, high: float) -> float:
    try:
        value = float(fields[name])
    except ValueError:
        raise Invalid(400, f"{name} must be a number") from None
    if not (math.isfinite(value) and low <= value <= high):
        raise Invalid(400, f"{name} must be from {low:g} to {high:g}")
    return value


def _place(fields: dict[str, str], config: Config) -> tuple[float, float]:
    """lat/long, or the community the address names (there is no geocoder)."""
    if fields.get("lat") or fields.get("long"):
        if not (fields.get("lat") and fields.get("long")):
            raise Invalid(400, "lat and long go together")
        return _number(fields, "lat", -90, 90), _number(fields, "long", -180, 180)
    address = fields.get("address_string", "")
    if not address:
        raise Invalid(400, "a location is required: lat and long, or address_string")
    for community in config.district.communities.values():
        if community.name in address or community.name.removesuffix("社区") in address:
            return centroid(community.polygon)
    raise Invalid(400, f"address_string names no community of {config.district.name}: send lat and long")


def read_request(fields: dict[str, str], attributes: dict[str, str], config: Config) -> ServiceRequest:
    """The fields of a POST (form or JSON, api_key already checked), or Invalid naming what is wrong."""
    unknown = sorted(set(fields) - KNOWN)
    if unknown:
        raise Invalid(400, f"unknown field(s): {', '.join(unknown)[:300]}")
    code = fields.get("service_code", "")
    if not code:
        raise Invalid(400, "service_code is required")
    if code not in CityCategory.__members__:
        raise Invalid(404, f"service_code {code[:60]!r} not found (GET services.json lists them)")
    lat, lon = _place(fields, config)
    limits = {"description": 4000, "address_string": 500, "phone": 40}
    for name, limit in limits.items():
        if len(fields.get(name, "")) > limit:
            raise Invalid(400, f"{name} is longer than {limit} characters")
    media = fields.get("media_url") or None
    if media is not None and not MEDIA_URL.match(media):
        raise Invalid(400, "media_url must be an http or https URL (at most 1000 characters)")
    if len(attributes) > MAX_ATTRIBUTES or any(len(k) > 100 or len(v) > 500 for k, v in attributes.items()):
        raise Invalid(400, f"at most {MAX_ATTRIBUTES} attributes, names up to 100 and values up to 500 characters")
    return ServiceRequest(service_code=CityCategory(code), lat=lat, lon=lon, address=fields.get("address_string", ""),
                          description=fields.get("description", ""), attributes=dict(sorted(attributes.items())),
                          media_url=media, phone=fields.get("phone") or None,
                          device=f"{fields.get('device_id', '')}\x1f{fields.get('account_id', '')}")


def request_id(client: str, request: ServiceRequest, received_at: datetime, config: Config) -> str:
    day = received_at.astimezone(config.district.tz).date().isoformat()
    parts = [client, day, request.service_code.value, f"{request.lat:.6f}", f"{request.lon:.6f}", request.address,
             request.description, *(f"{k}={v}" for k, v in request.attributes.items()), request.media_url or "",
             request.device]
    return never_masked(f"O311-{day.replace('-', '')}-{digest(*parts, size=6)}")


def to_report(request: ServiceRequest, service_request_id: str, channel: str, received_at: datetime) -> CityReport:
    """The report as it goes on soc.raw.city: a citizen's personal data is masked before it is stored there
    (the request id, made from the unmasked request, still tells a retry)."""
    return CityReport(case_no=service_request_id, channel=channel, category=request.service_code,
                      description=mask_personal(request.description), address=mask_personal(request.address),
                      lat=request.lat, lon=request.lon, reported_at=received_at,
                      reporter_phone=mask_phone(request.phone) if request.phone else None,
                      media_url=request.media_url,  # a link, shown as one: masking digits would break it
                      attributes=mask_everywhere(request.attributes))


def record(report: CityReport, incident: Incident | None, client: str | None) -> dict[str, Any]:
    """What is kept of a request (no personal data): its service, time and place, and the incident it became
    (None when rules.yaml grades the category below every threshold: no ticket). `client`: None when
    rebuilt from soc.raw.city, which does not say."""
    return {"service_request_id": report.case_no, "service_code": report.category.value, "client": client,
            "requested_datetime": report.reported_at.isoformat(), "lat": report.lat, "long": report.lon,
            "incident_id": incident and incident.incident_id, "dedup_key": incident and incident.dedup_key,
            "community": incident and incident.community}


def is_request(report: CityReport) -> bool:
    return report.case_no.startswith("O311-")


def belongs(ticket: Ticket, incident_id: str, dedup_key: str, requested: datetime) -> bool:
    """Whether the request's incident opened or joined this ticket: by its id (a ticket keeps its latest 20),
    else by its dedup key and the ticket being open when the request came."""
    if ticket.incident_id == incident_id or incident_id in ticket.incident_ids:
        return True
    return (ticket.dedup_key == dedup_key and ticket.dispatched_at <= requested
            and (ticket.closed_at is None or ticket.closed_at >= requested))


def status(record: dict[str, Any], ticket: Ticket | None, config: Config) -> dict[str, Any]:
    """GeoReport's fields of one request, times in the district's zone: never the reporter's data (no
    description, contact or ids)."""
    code = CityCategory(record["service_code"])

    def local(at: datetime) -> str:
        return at.astimezone(config.district.tz).isoformat(timespec="seconds")

    requested = local(datetime.fromisoformat(record["requested_datetime"]))
    body = {"service_request_id": record["service_request_id"], "status": "open", "status_notes": RECEIVED_NOTE,
            "service_name": LABEL[code], "service_code": code.value, "agency_responsible": None,
            "service_notice": None, "requested_datetime": requested,
            "updated_datetime": requested, "expected_datetime": None,
            "lat": record["lat"], "long": record["long"]}
    if ticket is None:
        return body
    department = config.district.departments.get(ticket.department)
    agency = department.name if department else ticket.department
    updated = max([ticket.dispatched_at, *(h.at for h in ticket.history)])
    return {**body, "status": "closed" if ticket.status.value == "closed" else "open",
            "status_notes": STATUS_NOTES[ticket.status.value].format(agency=agency), "agency_responsible": agency,
            "updated_datetime": local(updated), "expected_datetime": local(ticket.resolve_due)}
