"""Each ticket the API gives says how it stands to the department asking (`relation`): its own work, a
ticket it watches (here a correlation's watchers), or one it only has in view (the centre's district),
so the inbox puts its own tickets first and the watched ones in their 关注 list without guessing."""
from __future__ import annotations

import pytest

from tests.integration.payloads import linked_flood_and_jam

pytestmark = pytest.mark.integration


def relation(pipeline, ticket_id: str, department: str) -> str:
    status, body = pipeline.get(f"/api/tickets/{ticket_id}", department)
    assert status == 200, body
    return body["relation"]


def test_each_ticket_says_whether_the_department_owns_it_watches_it_or_only_has_it_in_view(pipeline, build):
    flood, jam = linked_flood_and_jam(pipeline, build, "rongshu")
    assert (flood.department, jam.department) == ("flood_control", "traffic_police")
    assert relation(pipeline, flood.ticket_id, "flood_control") == "own"
    assert relation(pipeline, jam.ticket_id, "flood_control") == "watched"
    assert relation(pipeline, jam.ticket_id, "traffic_police") == "own"
    assert relation(pipeline, flood.ticket_id, "traffic_police") == "watched"
    assert jam.severity.value != "red" and "ops_centre" not in jam.watchers
    assert relation(pipeline, jam.ticket_id, "ops_centre") == "in_view"

    # The inbox's listing: flood control owns no traffic ticket, so every one it lists it watches.
    status, listing = pipeline.get("/api/tickets?department=flood_control&source=traffic&limit=200", "flood_control")
    assert status == 200, listing
    assert jam.ticket_id in {t["ticket_id"] for t in listing["items"]}
    assert {t["relation"] for t in listing["items"]} == {"watched"}
    status, listing = pipeline.get("/api/tickets?department=traffic_police&source=traffic&limit=200", "traffic_police")
    assert status == 200 and jam.ticket_id in {t["ticket_id"] for t in listing["items"]}
    assert {t["relation"] for t in listing["items"]} == {"own"}


def test_an_inbox_lists_its_own_tickets_and_its_watched_ones_apart(pipeline, build):
    flood, jam = linked_flood_and_jam(pipeline, build, "yugang")

    def listed(relation: str, department: str) -> list[dict]:
        status, body = pipeline.get(f"/api/tickets?relation={relation}&limit=200", department)
        assert status == 200, body
        assert len(body["items"]) == min(body["total"], 200)
        return body["items"]

    own, watched = listed("own", "flood_control"), listed("watched", "flood_control")
    assert flood.ticket_id in {t["ticket_id"] for t in own} and {t["relation"] for t in own} == {"own"}
    assert jam.ticket_id in {t["ticket_id"] for t in watched} and {t["relation"] for t in watched} == {"watched"}
    assert jam.ticket_id in {t["ticket_id"] for t in listed("own", "traffic_police")}
    assert flood.ticket_id in {t["ticket_id"] for t in listed("watched", "traffic_police")}


def test_a_relation_other_than_own_or_watched_or_without_an_inbox_is_a_400(pipeline):
    assert pipeline.get("/api/tickets?relation=in_view", "flood_control") == (
        400, {"error": "relation must be one of own, watched"})
    assert pipeline.get("/api/tickets?relation=own", "ops_centre") == (
        400, {"error": "relation needs a department's inbox: add department"})
    assert pipeline.get("/api/tickets?relation=own&department=ops_centre", "ops_centre")[0] == 200
