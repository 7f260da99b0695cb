"""Correlation through the stack: a waterlogging reading and a congestion report 200 m apart, from two
sources, become two tickets linked to each other, the congestion graded up and watched by flood control."""
from __future__ import annotations

import pytest

from tests.support import poll

pytestmark = pytest.mark.integration


def test_waterlogging_and_the_congestion_it_causes_are_linked_across_sources(pipeline, build):
    lat, lon = build.point("liyuan", north_room=0.002)
    station = f"JS-{build.unique}"
    pipeline.send("soc.raw.traffic", {"event_id": build.next_id("SC"), "type": "congestion", "road": "荔园路",
                                      "lat": lat + 0.0018, "lon": lon, "observed_at": build.at(), "speed_kmh": 35.0})
    pipeline.send("soc.raw.flood", build.flood(station_id=station, kind="waterlogging", value=20, lat=lat, lon=lon,
                                               warning_level=None, danger_level=None))

    def linked():
        [flood] = pipeline.tickets_where(lambda t: t.source_ref.startswith(station)) or [None]
        jams = pipeline.tickets_where(lambda t: t.category.value == "traffic_congestion" and abs(t.lat - lat - 0.0018) < 1e-6
                                      and abs(t.lon - lon) < 1e-6)
        if flood is None or not jams or not any(r.ticket_id == jams[0].ticket_id for r in flood.related) \
                or not any(r.ticket_id == flood.ticket_id for r in jams[0].related):
            return None
        return flood, jams[0]

    flood, jam = poll(linked, 60, "the waterlogging and congestion tickets linked both ways")
    assert any(r.ticket_id == flood.ticket_id and r.role == "cause" for r in jam.related)
    assert (jam.opened_severity.value, jam.severity.value) == ("blue", "orange")
    assert "flood_control" in jam.watchers and "traffic_police" in flood.watchers
