"""Open311 GeoReport v2 (handlers/open311.py): the service list, a request read and refused, its id, the
CityReport it becomes and the status fields, which never carry the reporter's data."""
from __future__ import annotations

from datetime import datetime, timedelta
from xml.etree.ElementTree import fromstring

import pytest

from handlers import open311, ticketing
from handlers.base import Context
from handlers.intake import to_incident
from handlers.open311 import Invalid
from schemas.enums import Category, TicketStatus
from schemas.raw import CityCategory
from tests.unit.conftest import NOW

FIELDS = {"service_code": "road_damage", "lat": "22.5102", "long": "113.9301", "address_string": "望海路12号",
          "description": "路面塌陷一个大坑，电话13912345678", "media_url": "https://img.example.cn/p/1.jpg",
          "phone": "13912345678", "email": "a@example.cn", "first_name": "王", "device_id": "dev-1"}


def read(config, fields=None, attributes=None):
    return open311.read_request(FIELDS if fields is None else fields, attributes or {}, config)


def test_services_are_the_city_categories_in_json_and_xml(config):
    rows = open311.services(config)
    assert [r["service_code"] for r in rows] == [c.value for c in CityCategory]
    assert rows[7] == {"service_code": "manhole_cover_missing", "service_name": "井盖缺失",
                       "description": "城市管理：井盖缺失", "metadata": False, "type": "realtime",
                       "keywords": "manhole,cover,missing", "group": "city"}
    root = fromstring(open311.as_xml("services", "service", rows))
    first = root.find("service")
    assert root.tag == "services" and len(root) == len(CityCategory)
    assert (first.findtext("service_code"), first.findtext("metadata"), first.findtext("group")) == (
        "garbage_overflow", "false", "city")


def test_a_request_becomes_a_mobile_app_city_report_with_the_phone_masked(config):
    wanted = read(config, attributes={"depth_cm": "30"})
    rid = open311.request_id("citizen_app", wanted, NOW, config)
    report = open311.to_report(wanted, rid, "mobile_app", NOW)
    assert (report.case_no, report.channel.value, report.category, report.reported_at) == (
        rid, "mobile_app", CityCategory.road_damage, NOW)
    # What goes on soc.raw.city is stored: the citizen's number is masked there already.
    assert "13912345678" not in report.model_dump_json()
    assert (report.reporter_phone, report.description) == ("139****5678", "路面塌陷一个大坑，电话139****5678")
    incident = to_incident("city", report.model_dump_json().encode(), Context(config, NOW))
    assert incident.category is Category.city_road_damage and incident.source_ref == rid
    assert "13912345678" not in incident.model_dump_json()
    assert incident.details["reporter_phone"] == "139****5678"
    assert incident.details["media_url"] == FIELDS["media_url"] and incident.details["attributes"] == {"depth_cm": "30"}
    # The reporter's photo reaches the ticket as the link it is (the inbox shows it; the server never fetches it).
    [ticket] = ticketing.step(config, None, incident, incident.dedup_key).tickets
    assert ticket.media_url == FIELDS["media_url"]


def test_the_id_is_the_same_for_a_retry_and_new_for_other_content_or_another_day(config):
    wanted = read(config)
    rid = open311.request_id("citizen_app", wanted, NOW, config)
    assert rid == open311.request_id("citizen_app", read(config), NOW + timedelta(minutes=5), config)
    assert rid.startswith("O311-20260512-")
    others = {open311.request_id("platform_12345", wanted, NOW, config),
              open311.request_id("citizen_app", read(config, {**FIELDS, "description": "另一个坑"}), NOW, config),
              open311.request_id("citizen_app", wanted, NOW + timedelta(days=1), config)}
    assert rid not in others and len(others) == 3


def test_an_address_alone_must_name_a_community(config):
    wanted = read(config, {"service_code": "garbage_overflow", "address_string": "海滨社区 滨海路垃圾站"})
    assert config.district.communities["haibin"].polygon and (wanted.lat, wanted.lon) != (0, 0)
    incident = to_incident("city", open311.to_report(wanted, "O311-x", "mobile_app", NOW).model_dump_json().encode(),
                           Context(config, NOW))
    assert incident.community == "haibin"


@pytest.mark.parametrize("fields, code, description", [
    ({}, 400, "service_code is required"),
    ({"service_code": "potholes", "lat": "22.51", "long": "113.93"}, 404,
     "service_code 'potholes' not found (GET services.json lists them)"),
    ({"service_code": "road_damage"}, 400, "a location is required: lat and long, or address_string"),
    ({"service_code": "road_damage", "lat": "22.51"}, 400, "lat and long go together"),
    ({"service_code": "road_damage", "lat": "north", "long": "113.93"}, 400, "lat must be a number"),
    ({"service_code": "road_damage", "lat": "95", "long": "113.93"}, 400, "lat must be from -90 to 90"),
    ({"service_code": "road_damage", "address_string": "深南大道"}, 400,
     "address_string names no community of 海湾街道: send lat and long"),
    ({"service_code": "road_damage", "lat": "22.51", "long": "113.93", "media_url": "file:///etc/passwd"}, 400,
     "media_url must be an http or https URL (at most 1000 characters)"),
    ({"service_code": "road_damage", "lat": "22.51", "long": "113.93", "colour": "red"}, 400,
     "unknown field(s): colour"),
])
def test_bad_requests_name_what_is_wrong(config, fields, code, description):
    with pytest.raises(Invalid) as info:
        read(config, fields)
    assert (info.value.code, info.value.description) == (code, description)


def test_status_is_open_until_closed_with_the_agency_and_the_resolve_deadline(config):
    wanted = read(config)
    rid = open311.request_id("citizen_app", wanted, NOW, config)
    incident = to_incident("city", open311.to_report(wanted, rid, "mobile_app", NOW).model_dump_json().encode(),
                           Context(config, NOW))
    record = {"service_request_id": rid, "service_code": "road_damage", "requested_datetime": NOW.isoformat(),
              "lat": wanted.lat, "long": wanted.lon, "incident_id": incident.incident_id,
              "dedup_key": incident.dedup_key, "community": incident.community}
    received = open311.status(record, None, config)
    assert (received["status"], received["status_notes"], received["expected_datetime"]) == ("open", "已受理，正在分派", None)
    [ticket] = ticketing.step(config, None, incident, incident.dedup_key).tickets
    assert open311.belongs(ticket, incident.incident_id, incident.dedup_key, NOW)
    body = open311.status(record, ticket, config)
    assert body == {**body, "status": "open", "agency_responsible": "城管执法队",
                    "status_notes": "已派遣至城管执法队",
                    "expected_datetime": ticket.resolve_due.astimezone(NOW.tzinfo).isoformat(timespec="seconds"),
                    "requested_datetime": "2026-05-12T09:30:00+08:00"}
    closed = ticket.model_copy(update={"status": TicketStatus.closed})
    assert open311.status(record, closed, config)["status"] == "closed"
    # Nothing of the reporter: no description, phone, name, email or device.
    text = str(body)
    assert not any(v in text for v in ("13912345678", "139****5678", "王", "a@example.cn", "dev-1", "塌陷"))
    later = datetime(2026, 6, 1, tzinfo=NOW.tzinfo)
    assert not open311.belongs(ticket.model_copy(update={"incident_ids": [], "incident_id": "x", "closed_at": NOW}),
                               "other", incident.dedup_key, later)
