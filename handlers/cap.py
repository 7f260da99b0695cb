"""CAP 1.2 warnings in and out. No I/O.

In: an alert from a warning feed becomes flood-prevention readings on soc.raw.flood, so the normal path
grades, tickets and raises the emergency-response level (rules.yaml `response.triggers`): a typhoon
warning is a typhoon_signal reading of its colour; a rainstorm warning is a rainfall reading at the
rules.yaml threshold of its colour. Each Alert -> Update -> Cancel chain is one station (`CAP-<kind>-<hash
of the first alert>`). A Cancel, and an alert's `expires`, lower the signal: a white signal, 0 mm/h.
While an alert is up, the signal is read again every half `response.hold` (at fixed times from `sent`),
as a gauge keeps reporting, so the level it raised does not lapse before the alert expires.

Out: a red ticket as a CAP 1.2 alert, for public warning systems; `parse` reads it back.
"""
from __future__ import annotations

import codecs
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import defusedxml
from defusedxml.ElementTree import fromstring

from handlers import instants
from handlers.geo import centroid, circle_meets, community_at, polygons_meet
from handlers.intake import R, Rejected, digest
from handlers.privacy import never_masked
from schemas.cap import NAMESPACE, CapAlert, CapArea, CapCircle, CapInfo, CapRecord, Kind
from schemas.config import Config
from schemas.enums import Category, Severity, Source
from schemas.raw import FloodKind, FloodReading, TyphoonSignal
from schemas.records import Ticket

MAX_BYTES = 256 * 1024
# The encoding an XML declaration names (only an ASCII-compatible document can match it).
XML_ENCODING = re.compile(rb"""<\?xml\s[^>]*?encoding\s*=\s*["']([A-Za-z][A-Za-z0-9._-]{0,39})["']""")
NS = {"cap": NAMESPACE}
SEVERITY = {"Extreme": Severity.red, "Severe": Severity.orange, "Moderate": Severity.yellow, "Minor": Severity.blue}
CAP_SEVERITY = {v: k for k, v in SEVERITY.items()}
# The event's name (GB/T 35965.1 writes it in Chinese) or its code (the profile's eventType codes).
EVENT_WORDS: dict[Kind, tuple[str, ...]] = {"typhoon": ("台风", "typhoon"), "rainstorm": ("暴雨", "rainstorm")}
EVENT_CODES: dict[str, Kind] = {"11B01": "typhoon", "11B03": "rainstorm"}
CATEGORY: dict[Kind, Category] = {"typhoon": Category.typhoon, "rainstorm": Category.flood_rainfall}
WARNING_NAME: dict[Kind, str] = {"typhoon": "台风预警", "rainstorm": "暴雨预警"}
# CAP's <category> and <event> of the alerts this district publishes.
OUT_CATEGORY = {Source.flood: "Met", Source.traffic: "Transport", Source.city: "Infra", Source.construction: "Safety"}
OUT_EVENT = {Category.typhoon: "台风", Category.flood_rainfall: "暴雨"}


# ------------------------------------------------------------------ parsing

def _text(element: ET.Element, name: str, required: bool = True) -> str:
    found = element.find(f"cap:{name}", NS)
    value = (found.text or "").strip() if found is not None else ""
    if required and not value:
        raise Rejected(R.missing_field, f"<{name}> is missing")
    return value


def _time(element: ET.Element, name: str, required: bool = True) -> datetime | None:
    value = _text(element, name, required)
    if not value:
        return None
    when = instants.instant(value)
    if isinstance(when, instants.BadTime):
        raise Rejected(*{
            instants.TimeProblem.not_a_time: (R.wrong_type, f"<{name}> {value[:40]!r} is not a CAP date-time"),
            instants.TimeProblem.no_offset: (R.wrong_type, f"<{name}> {value[:40]!r} has no UTC offset"),
            instants.TimeProblem.out_of_range: (R.out_of_range, f"<{name}> {value[:40]!r} is not {when.range_text}"),
        }[when.problem])
    return when


def _decoded(raw: bytes) -> bytes | str:
    """expat reads UTF-8 and UTF-16 itself but refuses the multi-byte encodings Chinese feeds declare (GBK,
    GB18030) with a ValueError: a document declaring an encoding is decoded here, and expat reads the text."""
    declared = XML_ENCODING.match(raw)
    if declared is None:
        return raw
    name = declared.group(1).decode("ascii")
    try:
        return raw.decode(codecs.lookup(name).name)
    except LookupError:
        raise Rejected(R.not_xml, f"unknown encoding {name!r}") from None
    except UnicodeDecodeError as exc:
        raise Rejected(R.not_xml, f"not {name} text at byte {exc.start}") from None


def _point(text: str, where: str) -> tuple[float, float]:
    try:
        lat, lon = (float(part) for part in text.split(","))
    except ValueError:
        raise Rejected(R.wrong_type, f"<{where}> point {text[:40]!r} is not 'lat,lon'") from None
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 <= lat <= 90 and -180 <= lon <= 180):
        raise Rejected(R.out_of_range, f"<{where}> point {text[:40]!r} is not on the earth")
    return lat, lon


def _area(element: ET.Element) -> CapArea:
    polygons = []
    for polygon in element.findall("cap:polygon", NS):
        points = [_point(p, "polygon") for p in (polygon.text or "").split()]
        if len(points) < 4 or points[0] != points[-1]:
            raise Rejected(R.invalid, "<polygon> needs at least 4 points, the first repeated at the end")
        polygons.append(points)
    circles = []
    for circle in element.findall("cap:circle", NS):
        centre, _, radius = (circle.text or "").strip().partition(" ")
        lat, lon = _point(centre, "circle")
        try:
            radius_km = float(radius)
        except ValueError:
            raise Rejected(R.wrong_type, f"<circle> radius {radius[:20]!r} is not a number (km)") from None
        if not (math.isfinite(radius_km) and 0 <= radius_km <= 1000):
            raise Rejected(R.out_of_range, f"<circle> radius {radius_km} km is out of range")
        circles.append(CapCircle(lat=lat, lon=lon, radius_km=radius_km))
    return CapArea(description=_text(element, "areaDesc"), polygons=polygons, circles=circles,
                   geocodes=list(_pairs(element, "geocode").values()))


def _pairs(element: ET.Element, name: str) -> dict[str, str]:
    return {_text(p, "valueName"): _text(p, "value", False) for p in element.findall(f"cap:{name}", NS)}


def _info(element: ET.Element) -> CapInfo:
    return CapInfo(
        language=_text(element, "language", False) or "en-US",
        categories=[(c.text or "").strip() for c in element.findall("cap:category", NS)] or [_text(element, "category")],
        event=_text(element, "event"), urgency=_text(element, "urgency"), severity=_text(element, "severity"),
        certainty=_text(element, "certainty"), event_codes=_pairs(element, "eventCode"),
        effective=_time(element, "effective", False), onset=_time(element, "onset", False),
        expires=_time(element, "expires", False), sender_name=_text(element, "senderName", False),
        headline=_text(element, "headline", False), description=_text(element, "description", False),
        parameters=_pairs(element, "parameter"), areas=[_area(a) for a in element.findall("cap:area", NS)])


def parse(raw: bytes) -> CapAlert:
    """A CAP 1.2 document, or Rejected. Entities and DTDs are refused before anything is expanded."""
    if len(raw) > MAX_BYTES:
        raise Rejected(R.too_large, f"{len(raw)} bytes, limit {MAX_BYTES}")
    try:
        root = fromstring(_decoded(raw), forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException as exc:
        raise Rejected(R.forbidden_xml, f"refused: {type(exc).__name__} (no DTDs or entities)") from None
    except ET.ParseError as exc:
        raise Rejected(R.not_xml, f"not well-formed XML: {exc}") from None
    if root.tag != f"{{{NAMESPACE}}}alert":
        raise Rejected(R.invalid, f"root element {root.tag[:120]!r} is not a CAP 1.2 <alert> ({NAMESPACE})")
    references = []
    for triple in _text(root, "references", False).split():
        sender, identifier, *_ = [*triple.split(","), ""]
        references.append(f"{sender},{identifier}")
    return CapAlert(identifier=_text(root, "identifier"), sender=_text(root, "sender"), sent=_time(root, "sent"),
                    status=_text(root, "status"), msg_type=_text(root, "msgType"), scope=_text(root, "scope"),
                    references=references, info=[_info(i) for i in root.findall("cap:info", NS)])


# ------------------------------------------------------------------ deciding

@dataclass(frozen=True)
class Decision:
    """What to publish: records on soc.cap (the alert, and the alerts it supersedes) and readings on
    soc.raw.flood. `ignored`: why an alert that is recorded is not acted on (it is dead-lettered too)."""

    records: list[CapRecord]
    readings: list[FloodReading] = field(default_factory=list)
    ignored: Rejected | None = None


def event_kind(info: CapInfo) -> Kind | None:
    for code in info.event_codes.values():
        if code in EVENT_CODES:
            return EVENT_CODES[code]
    lowered = info.event.lower()
    return next((kind for kind, words in EVENT_WORDS.items() if any(w in lowered for w in words)), None)


def covers_district(geocode: str, config: Config) -> bool:
    """Whether a division code names the district, a division containing it (440305 contains 440305007),
    or one inside it (taken as the whole district: which community it is, the codes do not say here)."""
    code = geocode.strip()
    return bool(code) and any(own.startswith(code.rstrip("0") or code) or code.startswith(own)
                              for own in config.district.intake.cap_geocodes)


def communities_of(areas: list[CapArea], config: Config) -> list[str]:
    """The district's communities the areas meet; no area at all, or a division code of the district
    (district.yaml intake.cap_geocodes), is the whole district."""
    communities = config.district.communities
    if not areas or any(covers_district(g, config) for area in areas for g in area.geocodes):
        return sorted(communities)
    met = set()
    for cid, community in communities.items():
        for area in areas:
            if any(polygons_meet([(lon, lat) for lat, lon in polygon], community.polygon) for polygon in area.polygons) \
                    or any(circle_meets(community.polygon, c.lat, c.lon, c.radius_km * 1000) for c in area.circles):
                met.add(cid)
    return sorted(met)


def _place(areas: list[CapArea], communities: list[str], config: Config) -> tuple[float, float]:
    """Where the signal's reading is placed: the first circle's centre or polygon's mean when that is in the
    district, else the middle of the first community the area meets."""
    for area in areas:
        for lat, lon in [*((c.lat, c.lon) for c in area.circles),
                         *(centroid([(x, y) for y, x in polygon[:-1]]) for polygon in area.polygons)]:
            if community_at(config.district.communities, lat, lon) in communities:
                return lat, lon
    return centroid(config.district.communities[communities[0]].polygon)


def rainfall_for(config: Config, severity: Severity) -> float:
    """The mm/h at which rules.yaml grades rainfall `severity`."""
    values = [t.at_least for t in config.rules.flood["rainfall"].thresholds
              if t.measure == "value" and t.severity is severity]
    if not values:
        raise Rejected(R.invalid, f"rules.yaml grades no rainfall reading {severity.value}")
    return min(values)


def station_of(kind: Kind, first_key: str) -> str:
    """The station of an alert chain, named by its first alert's key."""
    return never_masked(f"CAP-{kind}-{digest(first_key, size=4)}")


def reading(config: Config, record: CapRecord, at: datetime, lowered: bool = False) -> FloodReading:
    """The signal of a record at `at`, or (lowered) its withdrawal."""
    # Named as people say it: the ticket reads 台风预警 台风信号 橙色, not the chain's CAP-typhoon-<hash>.
    common = {"station_id": record.station_id, "station_name": WARNING_NAME[record.kind], "lat": record.lat,
              "lon": record.lon, "observed_at": at}
    if record.kind == "typhoon":
        signal = TyphoonSignal.white if lowered else TyphoonSignal(record.severity.value)
        return FloodReading(kind=FloodKind.typhoon_signal, signal=signal, **common)
    value = 0.0 if lowered else rainfall_for(config, record.severity)
    return FloodReading(kind=FloodKind.rainfall, value=value, **common)


def decide(alert: CapAlert, feed: str, known: Mapping[str, CapRecord], config: Config,
           received_at: datetime) -> Decision:
    """Raises Rejected for an alert that is not recorded at all (the feed gets a 4xx). `received_at` is the
    receiving worker's clock at intake, kept in the record: whether an alert had expired, or was sent from
    the future, is decided against it, so a replay decides the same way."""
    if alert.sent - received_at > config.district.intake.cap_skew:
        raise Rejected(R.in_future, f"sent {alert.sent.isoformat()} is more than "
                                    f"{config.district.intake.cap_clock_skew} ahead of this worker's clock")
    base = {"key": alert.key, "identifier": alert.identifier, "sender": alert.sender, "sent": alert.sent,
            "status": alert.status, "msg_type": alert.msg_type, "feed": feed, "received_at": received_at}
    info = alert.info[0] if alert.info else None
    headline = {"headline": info.headline if info else ""}
    if alert.status != "Actual":
        return Decision([CapRecord(**base, **headline, chain=alert.key)],
                        ignored=Rejected(R.not_actual, f"status {alert.status}: only Actual alerts are acted on"))
    earlier = [known[r] for r in alert.references if r in known and known[r].status == "Actual" and known[r].kind]
    if alert.msg_type in ("Update", "Cancel") and not earlier:
        refs = " ".join(alert.references) or "(none)"
        raise Rejected(R.unknown_reference, f"{alert.msg_type} must reference an earlier Actual alert; references: {refs[:300]}")
    if alert.msg_type not in ("Alert", "Update", "Cancel"):
        raise Rejected(R.unknown_value, f"msgType {alert.msg_type!r}: Alert, Update or Cancel")
    superseded = [e.model_copy(update={"superseded_by": alert.key}) for e in earlier]
    chain = earlier[0] if earlier else None
    latest = max((reads_from(e) for e in earlier), default=None)
    base["reads_from"] = latest + timedelta(seconds=1) if latest is not None and alert.sent <= latest else None
    if alert.msg_type == "Cancel":
        record = chain.model_copy(update={**base, **headline, "severity": None, "expires": None, "lowered_at": None,
                                          "superseded_by": None, "supersedes": [e.key for e in earlier]})
        return Decision([record, *superseded], [reading(config, chain, reads_from(record), lowered=True)])
    if info is None:
        raise Rejected(R.missing_field, f"<info> is missing: a {alert.msg_type} needs one")
    kind = event_kind(info)
    if kind is None:
        raise Rejected(R.unknown_value, f"event {info.event[:100]!r} is neither a typhoon nor a rainstorm warning")
    if chain is not None and chain.kind != kind:
        raise Rejected(R.invalid, f"an Update of a {chain.kind} warning cannot be a {kind} warning")
    if info.severity not in SEVERITY:
        raise Rejected(R.unknown_value, f"severity {info.severity!r}: Extreme, Severe, Moderate or Minor")
    if info.expires is not None and info.expires <= alert.sent:
        raise Rejected(R.out_of_range, "expires is not after sent")
    communities = communities_of(info.areas, config)
    if not communities:
        names = "; ".join(a.description for a in info.areas)
        raise Rejected(R.outside_district, f"the area ({names[:200]}) meets no community of {config.district.name}")
    lat, lon = _place(info.areas, communities, config)
    record = CapRecord(**base, headline=info.headline, chain=chain.chain if chain else alert.key, kind=kind,
                       severity=SEVERITY[info.severity], expires=info.expires,
                       station_id=chain.station_id if chain else station_of(kind, alert.key),
                       lat=lat, lon=lon, communities=communities, supersedes=[e.key for e in earlier])
    if info.expires is not None and info.expires <= received_at:
        # Kept so a later Update can reference it, as lowered: it raises nothing and supersedes nothing.
        late = record.model_copy(update={"supersedes": [], "lowered_at": info.expires})
        return Decision([late], ignored=Rejected(
            R.expired, f"expired {info.expires.isoformat()}, before it was received: recorded, not acted on"))
    return Decision([record, *superseded], [reading(config, record, reads_from(record))])


def reads_from(record: CapRecord) -> datetime:
    """When a record's signal took over the station: its time as a reading."""
    return record.reads_from or record.sent


# ------------------------------------------------------------------ the signal while it is up, and its expiry

def due(config: Config, record: CapRecord, now: datetime, every: timedelta) -> tuple[FloodReading, CapRecord | None]:
    """For a live record: the reading of the latest slot (`sent` + k * every) before now, or, once it
    expired, the lowering at `expires` with the record marked lowered. Fixed times make a repeat the same
    reading (the same incident id), so a worker that sends one twice changes nothing."""
    if record.expires is not None and now >= record.expires:
        return reading(config, record, record.expires, lowered=True), record.model_copy(update={"lowered_at": record.expires})
    start = reads_from(record)
    slot = start + every * math.floor((now - start) / every)
    return reading(config, record, max(slot, start)), None


# ------------------------------------------------------------------ out: a red ticket as CAP

def _sub(parent: ET.Element, name: str, text: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{NAMESPACE}}}{name}")
    element.text = text
    return element


def to_cap(ticket: Ticket, config: Config) -> bytes:
    """A CAP 1.2 alert for a red ticket: Actual, Public, Extreme, its place as a 0.5 km circle; expires at
    the ticket's resolve deadline; times in the district's zone. Ticket text is already masked
    (handlers/privacy.py)."""
    district = config.district

    def local(at: datetime) -> str:
        return at.astimezone(district.tz).isoformat(timespec="seconds")

    ET.register_namespace("", NAMESPACE)
    alert = ET.Element(f"{{{NAMESPACE}}}alert")
    for name, text in (("identifier", f"SOC-{ticket.ticket_id}"), ("sender", district.intake.cap_sender),
                       ("sent", local(ticket.dispatched_at)), ("status", "Actual"),
                       ("msgType", "Alert"), ("scope", "Public")):
        _sub(alert, name, text)
    info = ET.SubElement(alert, f"{{{NAMESPACE}}}info")
    place = district.communities[ticket.community].name if ticket.community in district.communities else district.name
    for name, text in (("language", "zh-CN"), ("category", OUT_CATEGORY[ticket.source]),
                       ("event", OUT_EVENT.get(ticket.category, ticket.category.value)), ("urgency", "Immediate"),
                       ("severity", CAP_SEVERITY[ticket.severity]), ("certainty", "Observed"),
                       ("expires", local(ticket.resolve_due)), ("senderName", district.name),
                       ("headline", ticket.title), ("description", ticket.description or ticket.title)):
        _sub(info, name, text)
    parameter = ET.SubElement(info, f"{{{NAMESPACE}}}parameter")
    _sub(parameter, "valueName", "ticket_id")
    _sub(parameter, "value", ticket.ticket_id)
    area = ET.SubElement(info, f"{{{NAMESPACE}}}area")
    _sub(area, "areaDesc", place)
    _sub(area, "circle", f"{ticket.lat:.6f},{ticket.lon:.6f} 0.5")
    return ET.tostring(alert, encoding="utf-8", xml_declaration=True)
