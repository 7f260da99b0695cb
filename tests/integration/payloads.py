"""Payload builders for integration tests: each test gets its own ids, places and day, so tests
never merge into each other's tickets whatever order they run in."""
from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

from handlers.geo import contains
from schemas.config import Config
from tests.support import poll

CST = timezone(timedelta(hours=8))


class Builder:
    def __init__(self, config: Config, unique: str):
        self.config = config
        self.unique = unique
        self.rng = random.Random(unique)
        # A day of its own: dedup windows are hours, so tests on different days never merge.
        self.day = datetime(2026, 1, 1, 10, 0, tzinfo=CST) + timedelta(days=self.rng.randrange(3000))
        self.count = 0

    def at(self, minutes: float = 0, hour: int | None = None) -> str:
        moment = self.day + timedelta(minutes=minutes)
        if hour is not None:
            moment = moment.replace(hour=hour)
        return moment.isoformat()

    def point(self, community: str, north_room: float = 0.0) -> tuple[float, float]:
        """A random point in the community; with `north_room`, the point that many degrees of
        latitude north of it is in the community too (for a report a little off a site's centre)."""
        polygon = self.config.district.communities[community].polygon
        lons, lats = [p[0] for p in polygon], [p[1] for p in polygon]
        while True:
            lon, lat = round(self.rng.uniform(min(lons), max(lons)), 6), round(self.rng.uniform(min(lats), max(lats)), 6)
            if contains(polygon, lon, lat) and contains(polygon, lon, lat + north_room):
                return lat, lon

    def next_id(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}-{self.unique}-{self.count}"

    def traffic(self, community: str = "wanghai", **fields) -> dict:
        lat, lon = self.point(community)
        return {"event_id": self.next_id("TR"), "type": "accident", "road": "望海路", "lat": lat, "lon": lon,
                "observed_at": self.at(), **fields}

    def flood(self, community: str = "haibin", **fields) -> dict:
        lat, lon = self.point(community)
        return {"station_id": f"WL-{self.unique}", "kind": "water_level", "value": 2.0, "warning_level": 3.0,
                "danger_level": 4.0, "lat": lat, "lon": lon, "observed_at": self.at(), **fields}

    def city(self, community: str = "liyuan", **fields) -> dict:
        lat, lon = self.point(community)
        return {"case_no": self.next_id("12345"), "channel": "hotline_12345", "category": "garbage_overflow",
                "description": "小区门口垃圾桶满溢，请联系13800138000", "address": "荔园路12号",
                "lat": lat, "lon": lon, "reported_at": self.at(), "reporter_phone": "13800138000", **fields}

    def site_event(self, community: str = "shahe", **fields) -> dict:
        lat, lon = self.point(community)
        return {"event_id": self.next_id("CS"), "kind": "activity_detected", "lat": lat, "lon": lon,
                "observed_at": self.at(), **fields}

    def site(self, lat: float, lon: float, **fields) -> dict:
        return {"site_id": f"SITE-{self.unique}", "name": f"沙河小学改建工程{self.unique}", "contractor": "海湾建设",
                "kind": "major", "lat": lat, "lon": lon, "radius_m": 120,
                "permit_from": (self.day - timedelta(days=30)).isoformat(),
                "permit_until": (self.day + timedelta(days=30)).isoformat(),
                "work_hours": "07:00-12:00,14:00-22:00", "status": "active", **fields}


def linked_flood_and_jam(pipeline, build: Builder, community: str):
    """A waterlogging ticket (flood_control's) and the congestion it causes (traffic_police's), linked:
    each department then watches the other's ticket."""
    lat, lon = build.point(community, north_room=0.002)
    station = f"JS-{build.unique}"
    pipeline.send("soc.raw.traffic", {"event_id": build.next_id("SC"), "type": "congestion", "road": "创业路",
                                      "lat": lat + 0.0018, "lon": lon, "observed_at": build.at(), "speed_kmh": 35.0})
    pipeline.send("soc.raw.flood", build.flood(station_id=station, kind="waterlogging", value=20, lat=lat, lon=lon,
                                               warning_level=None, danger_level=None))

    def linked():
        floods = pipeline.tickets_where(lambda t: t.source_ref.startswith(station))
        jams = pipeline.tickets_where(lambda t: t.category.value == "traffic_congestion"
                                      and abs(t.lat - lat - 0.0018) < 1e-6 and abs(t.lon - lon) < 1e-6)
        if floods and jams and "flood_control" in jams[0].watchers and "traffic_police" in floods[0].watchers:
            return floods[0], jams[0]
        return None

    return poll(linked, 60, "the waterlogging and congestion tickets linked, each watched by the other's department")
