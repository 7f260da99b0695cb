"""`soc simulate`: realistic traffic for the four raw topics and the site whitelist.

Two parts:

- `Simulator`: a pure, seeded generator (no I/O, no clock of its own). `whitelist(now)` gives the
  site registrations. `due(now)` gives what a sub-district sends up to `now`: each station's readings
  at its interval and reports (12345 and grid cases, accidents, jams, site violations) at
  REPORTS_PER_HOUR times `intensity` (docs/simulator.md has the figures). `generate(now, n)` gives n
  events of the four sources mixed by weight, for benchmarks and load; `next_batch(now, n)` the same
  as `(source, payload)` pairs. A payload is a dict for a well-formed event, or bytes / a broken dict
  for the ~1% malformed ones, flagged `malformed`.
- `encode(payload)` and `record_key(payload)`: an event as the Kafka record its source would send.
  Publishing them is streams/ops/sim_runner.py's (`soc simulate`).

Scenarios: `normal` (calm sensors, background hotline cases, rush hours by the local clock),
`rush_hour` (traffic held at its peak whatever the time), `rainstorm` (an hourly cycle: a 20-minute
storm in which rain, rivers, tide and waterlogging rise over the first 40%, peak, fall; pumps run and
sometimes fail; typhoon signals; congestion builds above the flooded underpasses; one river gauge
loses its link from 10 to 50 minutes in; then 40 calm minutes, longer than the response level's hold,
so the level raised by the storm ends before the next one).
"""
from __future__ import annotations

import json
import math
import random
import uuid
from collections import deque
from collections.abc import Mapping
from datetime import datetime, time as dtime, timedelta, timezone
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from handlers.construction import in_spans
from handlers.geo import contains, distance_m
from schemas.config import load_config
from streams.settings import Settings

SOURCES = ("traffic", "flood", "city", "construction")
SCENARIOS = ("normal", "rainstorm", "rush_hour")
SILENT_FROM, SILENT_UNTIL = timedelta(minutes=10), timedelta(minutes=50)
MALFORMED_SHARE = 0.01
OUTSIDE_SHARE = 0.02  # of traffic, city and construction points: outside every community
REPEAT_SHARE = {"traffic": 0.08, "city": 0.12, "construction": 0.10}
BASE_WEIGHT = {"traffic": 0.35, "flood": 0.25, "city": 0.25, "construction": 0.15}
RUSH_HOURS = ((dtime(7, 30), dtime(9, 30)), (dtime(17, 30), dtime(19, 30)))
RUSH_FACTOR = 3.0
M_PER_DEG = 111_320.0


class SimEvent(NamedTuple):
    source: str
    payload: bytes | dict
    malformed: bool


# ------------------------------------------------------------------ place names (fictional)

ROADS = {
    "haibin": ["滨海大道", "海滨路", "海韵街"],
    "wanghai": ["望海路", "海湾大道", "观澜街"],
    "yugang": ["渔港路", "渔港东街", "海湾大道"],
    "xingang": ["新港一路", "新港二路", "港湾大道"],
    "liyuan": ["荔园路", "荔枝林路", "学府路"],
    "guiwan": ["桂湾三路", "桂湾四路", "海湾大道"],
    "rongshu": ["榕树街", "榕荫路", "创业路"],
    "shahe": ["沙河东路", "沙河西路", "白石路"],
}
ROAD_POOL = ["海湾大道", "滨海大道", "创业路", "学府路", "南山大道", "工业八路", "兴海大道"]
ESTATES = {
    "haibin": ["海韵花园", "滨海名苑"], "wanghai": ["望海名居", "观海台"],
    "yugang": ["渔港新村", "渔民新村"], "xingang": ["新港花园", "港湾丽都"],
    "liyuan": ["荔园小区", "荔林春晓"], "guiwan": ["桂湾公寓", "桂花苑"],
    "rongshu": ["榕树苑", "榕城雅居"], "shahe": ["沙河新村", "白石洲花园"],
}
ESTATE_POOL = ["阳光花园", "幸福里", "海景华庭", "南园新村"]
LANDMARKS = ["公交站", "地铁站B出口", "农贸市场", "小学门口", "社康中心", "菜市场", "幼儿园", "加油站"]

SITE_NAMES_MAJOR = ["{road}地铁站配套工程", "{estate}二期住宅项目", "{road}雨污分流改造工程",
                    "海湾中学扩建工程", "{road}综合管廊工程", "{community}党群服务中心新建工程",
                    "{road}人行天桥工程"]
SITE_NAMES_SMALL = ["{estate}{n}栋外墙维修", "{road}{num}号商铺装修", "{road}燃气管道维修",
                    "{estate}电梯加装工程", "{road}人行道改造", "{estate}防水补漏工程"]
CONTRACTORS = ["海湾建设集团有限公司", "鹏程市政工程有限公司", "南粤水务建设有限公司",
               "深港装饰工程有限公司", "华南路桥建设有限公司", "安居建筑劳务有限公司",
               "中港城建工程有限公司", "海湾物业管理有限公司"]
WORK_HOURS_MAJOR = ["07:00-12:00,14:00-22:00", "07:00-22:00", "07:00-12:00,14:00-20:00"]
WORK_HOURS_SMALL = ["08:00-12:00,14:00-18:00", "08:30-12:00,14:00-18:00", "09:00-12:00,14:00-17:30"]

# (station_id, name, base m, warning m, danger m, storm factor, tidal)
WATER_STATIONS = [
    ("WL-01", "海湾河上游水位站", 1.30, 2.80, 3.40, 1.05, False),
    ("WL-02", "海湾河下游水位站", 1.10, 2.50, 3.10, 0.85, False),
    ("WL-03", "沙河水位站", 0.90, 2.20, 2.80, 1.00, False),
    ("TD-01", "渔港潮位站", 1.00, 2.30, 2.90, 0.95, True),
]
# (station_id, name, storm factor)
RAIN_GAUGES = [("RG-01", "海滨雨量站", 1.00), ("RG-02", "望海雨量站", 1.12), ("RG-03", "渔港雨量站", 0.92),
               ("RG-04", "荔园雨量站", 1.05), ("RG-05", "沙河雨量站", 0.95)]
# (station_id, name, intensity at which water starts to stand, depth cm at the storm's peak)
LOW_SPOTS = [("WLG-01", "望海路下穿通道", 0.25, 65), ("WLG-02", "渔港路农贸市场", 0.35, 40),
             ("WLG-03", "沙河东路桥底", 0.30, 55), ("WLG-04", "新港一路地铁C口", 0.45, 30),
             ("WLG-05", "荔园小学门口", 0.40, 25)]
PUMPS = [("PS-01", "望海排涝泵站"), ("PS-02", "渔港排涝泵站"), ("PS-03", "沙河排涝泵站")]
TYPHOON_STATION = ("TY-HW", "区气象台台风信号")

# ------------------------------------------------------------------ city report texts

CITY_TEXTS: dict[str, list[str]] = {
    "garbage_overflow": [
        "{addr}的垃圾桶已经满了好几天没人清运，垃圾溢出到路面，气味很大。",
        "{estate}垃圾分类投放点满溢，周边苍蝇蚊子很多，影响居民生活。",
        "{addr}有人乱倒装修垃圾，堆在路边好几天了。",
        "{addr}垃圾收集点没有及时清理，污水流到人行道上。",
    ],
    "illegal_vending": [
        "{addr}有流动摊贩占道卖水果，把人行道堵住了。",
        "每天晚上{addr}有烧烤摊占道经营，油烟很大，桌椅摆到马路上。",
        "{addr}早餐摊占用盲道经营，行人只能走机动车道。",
        "{addr}有商铺把货架摆到门外人行道上经营。",
    ],
    "illegal_advertising": [
        "{addr}电线杆和墙上贴满了小广告。",
        "{addr}有商家私自在人行道上摆放广告牌。",
        "{estate}楼道里被人喷涂了办证小广告。",
    ],
    "damaged_facility": [
        "{addr}的路灯不亮了，晚上很黑，行人经过很危险。",
        "{addr}公交站候车亭的玻璃碎了。",
        "{addr}人行道护栏被车撞歪了，一直没人修。",
        "{estate}旁边的健身器材坏了，有儿童在上面玩，担心出事。",
        "{addr}消防栓被撞坏了，一直在漏水。",
    ],
    "noise_complaint": [
        "{addr}的酒吧深夜音乐声音很大，吵得睡不着。",
        "{estate}楼下广场舞音响太吵，晚上十点以后还在跳。",
        "{addr}有商铺用喇叭循环播放促销广告，噪音扰民。",
        "{estate}{n}栋有住户装修，中午和晚上都在电钻施工。",
    ],
    "illegal_construction": [
        "{estate}{n}栋顶楼有人在私自加建铁皮房。",
        "{addr}一楼商铺擅自拆墙扩建，怀疑没有报批。",
        "{estate}有住户把阳台外扩搭建雨棚，占用公共空间。",
    ],
    "road_damage": [
        "{addr}路面有一个大坑，下雨积水看不见，电动车容易摔倒。",
        "{addr}人行道地砖松动翘起，老人走路容易绊倒。",
        "{addr}路面塌陷，约一米见方，非常危险。",
        "{addr}沥青路面开裂，车辆经过颠簸得厉害。",
    ],
    "manhole_cover_missing": [
        "{addr}有一个井盖不见了，旁边没有任何警示标志。",
        "{addr}井盖破损下陷，车辆经过时哐哐响。",
        "{addr}井盖丢失，附近是小学，儿童放学经过很危险。",
        "{addr}雨水井盖移位，露出一条缝。",
    ],
    "other": [
        "{addr}有一棵大树倾斜，树枝快要断了。",
        "{addr}有流浪狗聚集，晚上经常吠叫。",
        "{addr}共享单车乱停乱放，堵住了消防通道。",
        "{estate}小区门口有车辆长期占用消防通道。",
    ],
}
STORM_TEXTS: dict[str, list[str]] = {
    "road_damage": ["暴雨过后{addr}路面塌陷，有车辆陷进去，非常危险。",
                    "{addr}雨水把路基冲空了，人行道在下沉。"],
    "manhole_cover_missing": ["{addr}井盖被水冲开了，水在往外冒，很危险。",
                              "{addr}积水里的井盖被冲走了，看不到井口，有人差点掉落进去。"],
    "other": ["{addr}积水很深，已经有车辆熄火在水里。", "{addr}大树被风吹倒，压住了半边马路。",
              "{estate}地下车库进水了，请尽快派人抽水。"],
    "damaged_facility": ["{addr}路灯杆被风吹歪，电线掉下来了，担心触电。",
                         "{addr}广告牌被大风吹得摇晃，随时可能掉落。"],
}
CITY_WEIGHTS = {"garbage_overflow": 20, "illegal_vending": 15, "illegal_advertising": 8,
                "damaged_facility": 12, "noise_complaint": 12, "illegal_construction": 5,
                "road_damage": 10, "manhole_cover_missing": 6, "other": 12}
CAMERA_CATEGORIES = {"garbage_overflow", "illegal_vending", "illegal_advertising", "road_damage", "other"}
CITY_LABEL = {"garbage_overflow": "垃圾满溢", "illegal_vending": "占道经营", "illegal_advertising": "违规张贴广告",
              "road_damage": "路面破损", "other": "其他异常"}
CONTACT_TEXTS = ["，请联系{phone}", "，联系电话{phone}", "。我的电话是{phone}，处理完请回电。",
                 "，有问题可以打{phone}找我"]
CASE_PREFIX = {"hotline_12345": "RX", "grid_patrol": "WG", "camera_ai": "AI", "mobile_app": "APP"}

TRAFFIC_WEIGHTS = {"congestion": 30, "illegal_parking": 30, "accident": 12, "signal_fault": 7,
                   "road_obstruction": 12, "wrong_way": 4}

# ------------------------------------------------------------------ a sub-district's volumes (`due`)

# Reports that open (or join) tickets, per hour at intensity 1, by day in calm weather, for a sub-district of
# about 150,000 residents; docs/simulator.md says where each figure comes from. Keys are what the makers take:
# a city case's channel, a traffic event's type, a construction observation (see `_construction`).
REPORTS_PER_HOUR: dict[str, dict[str, float]] = {
    "city": {"hotline_12345": 2.0, "grid_patrol": 2.0, "mobile_app": 0.5, "camera_ai": 1.0},
    "traffic": {"accident": 0.5, "congestion": 0.5, "illegal_parking": 1.0, "signal_fault": 0.1,
                "road_obstruction": 0.2, "wrong_way": 0.05},
    "construction": {"unregistered": 0.3, "invalid_site": 0.2, "noise": 0.5, "dust": 0.4, "no_helmet": 0.3,
                     "unsafe_scaffold": 0.1},
}
# At a storm's peak a stream comes (1 + gain) times as often, in between 1 + gain x the storm's intensity:
# calls to 12345 several times over, fallen trees and jams, building sites stopped.
STORM_GAIN: dict[tuple[str, str], float] = {
    ("city", "hotline_12345"): 4.0, ("city", "mobile_app"): 3.0, ("city", "grid_patrol"): 2.0,
    ("traffic", "accident"): 2.0, ("traffic", "congestion"): 3.0, ("traffic", "road_obstruction"): 4.0,
    ("traffic", "signal_fault"): 3.0, **{("construction", k): -0.7 for k in REPORTS_PER_HOUR["construction"]},
}
RUSH_GAIN = {"congestion": 4.0, "accident": 2.0, "illegal_parking": 2.0}
NIGHT_FACTOR = {"traffic": 0.4, "city": 0.35, "construction": 0.4}  # 00:00-06:00 local
# Each station reads on connecting and then at its interval, staggered: automatic rain gauges' minute data,
# hydrological telemetry's flood-season 5 minutes, the typhoon signal feed polled each minute; all under
# rules.yaml's 10-minute heartbeats. A gauge's minute readings also catch the rain falling through orange
# on its way down, which lets its red trigger go (handlers/response.py) before the next storm.
READING_EVERY = {"rainfall": timedelta(minutes=1), "water_level": timedelta(minutes=5),
                 "waterlogging": timedelta(minutes=2), "pump_station": timedelta(minutes=5),
                 "typhoon_signal": timedelta(minutes=1)}
SITE_CAMERA_EVERY = timedelta(minutes=30)  # a registered site's camera reports its work in its hours
REPORT_SLICE = timedelta(seconds=60)  # the rates are taken at most this far apart


# ------------------------------------------------------------------ helpers

def _district_parts(district_config: Any) -> tuple[dict[str, Any], str]:
    """Accept a Config, a District, district.yaml as a dict, or a mapping of communities."""
    cfg = getattr(district_config, "district", district_config)
    if hasattr(cfg, "communities"):
        return dict(cfg.communities), getattr(cfg, "timezone", "Asia/Shanghai")
    if isinstance(cfg, Mapping) and "communities" in cfg:
        communities = {k: v for k, v in cfg["communities"].items()}
        return communities, cfg.get("timezone", "Asia/Shanghai")
    if isinstance(cfg, Mapping):
        return dict(cfg), "Asia/Shanghai"
    raise TypeError(f"district_config: expected a Config, District or mapping, got {type(cfg).__name__}")


def _polygon(community: Any) -> list[tuple[float, float]]:
    poly = community["polygon"] if isinstance(community, Mapping) else community.polygon
    return [(float(lon), float(lat)) for lon, lat in poly]


def _name(community: Any, default: str) -> str:
    return (community.get("name") if isinstance(community, Mapping) else getattr(community, "name", None)) or default


def _offset(lat: float, lon: float, dist_m: float, bearing: float) -> tuple[float, float]:
    dlat = dist_m * math.cos(bearing) / M_PER_DEG
    dlon = dist_m * math.sin(bearing) / (M_PER_DEG * math.cos(math.radians(lat)))
    return lat + dlat, lon + dlon


def _rfc3339(moment: datetime, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).isoformat(timespec="seconds")


def _in_rush_hour(local: datetime) -> bool:
    t = local.time()
    return any(start <= t < end for start, end in RUSH_HOURS)


def storm_curve(phase: float) -> float:
    """Storm intensity 0..1 over one storm (phase 0..1): rises over the first 40%, holds the peak to
    50%, falls until 90%, calm for the rest."""
    if phase < 0.4:
        return 0.5 - 0.5 * math.cos(math.pi * phase / 0.4)
    if phase < 0.5:
        return 1.0
    if phase < 0.9:
        return 0.5 + 0.5 * math.cos(math.pi * (phase - 0.5) / 0.4)
    return 0.0


class _Site(NamedTuple):
    site_id: str
    name: str
    contractor: str
    kind: str
    lat: float
    lon: float
    radius_m: float
    permit_from_days: int  # relative to the origin's local date
    permit_until_days: int
    work_hours: str
    status: str


# ------------------------------------------------------------------ the generator

class Simulator:
    """Seeded, clock-free event generator. The same seed, scenario, config and sequence of
    `now` values give the same output."""

    def __init__(self, seed: int | None = None, scenario: str = "normal", district_config: Any = None, *,
                 storm: timedelta = timedelta(minutes=20), calm: timedelta = timedelta(minutes=40),
                 start: datetime | None = None, places: Mapping[str, tuple[float, float]] | None = None,
                 intensity: float = 1.0):
        """places: station id -> (lat, lon), from the map's layers (map.geojson), so demo and map agree;
        a station not in it is placed at random in a community. intensity multiplies `due`'s report
        rates (not the stations' readings, which follow their intervals; not `generate`)."""
        if scenario not in SCENARIOS:
            raise ValueError(f"unknown scenario {scenario!r}: use one of {', '.join(SCENARIOS)}")
        if not intensity > 0:
            raise ValueError(f"intensity must be positive, got {intensity!r}")
        if district_config is None:
            district_config = load_config(Settings().config_dir)
        communities, tz_name = _district_parts(district_config)
        if not communities:
            raise ValueError("district_config has no communities")
        self.scenario = scenario
        self.intensity = intensity
        self._due_until: datetime | None = None
        self.tz = ZoneInfo(tz_name)
        self.storm, self.calm = storm, calm
        self._places = dict(places or {})
        self.origin: datetime | None = start
        self._rng = random.Random(seed)
        layout = random.Random(self._rng.getrandbits(64))
        self._tag = f"{self._rng.getrandbits(16):04X}"
        self._seq = 0
        self.counts = {s: 0 for s in SOURCES}
        self.malformed = 0
        # Recent well-formed payloads (with the citizen's own words for city cases), to repeat.
        self._recent: dict[str, deque[tuple[dict, str]]] = {s: deque(maxlen=20) for s in REPEAT_SHARE}
        self._plain = ""

        self._communities = {cid: (_name(c, cid), _polygon(c)) for cid, c in communities.items()}
        self._community_ids = list(self._communities)
        self._bbox = {cid: (min(x for x, _ in p), min(y for _, y in p), max(x for x, _ in p), max(y for _, y in p))
                      for cid, (_, p) in self._communities.items()}
        xs = [b[0] for b in self._bbox.values()] + [b[2] for b in self._bbox.values()]
        ys = [b[1] for b in self._bbox.values()] + [b[3] for b in self._bbox.values()]
        self._district_bbox = (min(xs), min(ys), max(xs), max(ys))

        self._layout_stations(layout)
        self._sites = self._layout_sites(layout)
        self._active_sites = [s for s in self._sites if s.status == "active" and s.permit_until_days >= 0]
        self._invalid_sites = [s for s in self._sites if s not in self._active_sites]

    # ---------------------------------------------------------------- geometry

    def _inside(self, lat: float, lon: float) -> bool:
        return any(contains(poly, lon, lat) for _, poly in self._communities.values())

    def _point_in(self, rng: random.Random, cid: str) -> tuple[float, float]:
        x0, y0, x1, y1 = self._bbox[cid]
        poly = self._communities[cid][1]
        for _ in range(1000):
            lon, lat = rng.uniform(x0, x1), rng.uniform(y0, y1)
            if contains(poly, lon, lat):
                return round(lat, 6), round(lon, 6)
        # Degenerate polygon: fall back to the vertex average.
        return (round(sum(y for _, y in poly) / len(poly), 6), round(sum(x for x, _ in poly) / len(poly), 6))

    def _point_outside(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self._district_bbox
        mx, my = max((x1 - x0) * 0.25, 0.005), max((y1 - y0) * 0.25, 0.005)
        for _ in range(1000):
            lon, lat = self._rng.uniform(x0 - mx, x1 + mx), self._rng.uniform(y0 - my, y1 + my)
            if not self._inside(lat, lon):
                return round(lat, 6), round(lon, 6)
        return round(y1 + my, 6), round(x1 + mx, 6)

    def _place(self) -> tuple[str | None, float, float]:
        """A random spot: (community id, lat, lon); ~2% outside every community (id None)."""
        if self._rng.random() < OUTSIDE_SHARE:
            lat, lon = self._point_outside()
            return None, lat, lon
        cid = self._rng.choice(self._community_ids)
        lat, lon = self._point_in(self._rng, cid)
        return cid, lat, lon

    def _jitter(self, lat: float, lon: float, max_m: float) -> tuple[float, float]:
        nlat, nlon = _offset(lat, lon, self._rng.uniform(0, max_m), self._rng.uniform(0, 2 * math.pi))
        return round(nlat, 6), round(nlon, 6)

    # ---------------------------------------------------------------- layout (fixed per seed)

    def _station_point(self, layout: random.Random, southmost: bool = False, sid: str = "") -> tuple[float, float]:
        # Drawn even for a placed station, so the rest of the layout is the same with or without the map.
        drawn = self._drawn_point(layout, southmost)
        return self._places.get(sid, drawn)

    def _drawn_point(self, layout: random.Random, southmost: bool) -> tuple[float, float]:
        if not southmost:
            return self._point_in(layout, layout.choice(self._community_ids))
        points = [self._point_in(layout, layout.choice(self._community_ids)) for _ in range(20)]
        return min(points)

    def _layout_stations(self, layout: random.Random) -> None:
        self._water = [(sid, name, base, warn, danger, factor, tidal, *self._station_point(layout, tidal, sid))
                       for sid, name, base, warn, danger, factor, tidal in WATER_STATIONS]
        self._gauges = [(sid, name, factor, *self._station_point(layout, sid=sid)) for sid, name, factor in RAIN_GAUGES]
        self._spots = [(sid, name, th, depth, *self._station_point(layout, sid=sid))
                       for sid, name, th, depth in LOW_SPOTS]
        self._pumps = [(sid, name, *self._station_point(layout, sid=sid)) for sid, name in PUMPS]
        self._typhoon = (*TYPHOON_STATION, *self._station_point(layout))

    def _names(self, rng: random.Random, cid: str | None) -> tuple[str, str, str]:
        """(road, estate, community name) for a community, or generic ones."""
        roads = ROADS.get(cid or "", ROAD_POOL)
        estates = ESTATES.get(cid or "", ESTATE_POOL)
        community = self._communities[cid][0] if cid in self._communities else "海湾"
        return rng.choice(roads), rng.choice(estates), community

    def _layout_sites(self, layout: random.Random) -> list[_Site]:
        count = layout.randint(10, 15)
        n_major = max(3, count // 3)
        placed: list[_Site] = []
        statuses = ["suspended", "revoked", "expired"] + ["active"] * (count - 3)
        layout.shuffle(statuses)
        used_names: set[str] = set()
        for i in range(count):
            major = i < n_major
            radius = float(layout.choice([150, 180, 200, 250, 300] if major else [30, 40, 50, 60]))
            for _ in range(500):
                cid = layout.choice(self._community_ids)
                lat, lon = self._point_in(layout, cid)
                rim = [_offset(lat, lon, radius, k * math.pi / 4) for k in range(8)]
                if not all(self._inside(a, b) for a, b in rim):
                    continue
                if all(distance_m(lat, lon, s.lat, s.lon) > radius + s.radius_m + 150 for s in placed):
                    break
            road, estate, community = self._names(layout, cid)
            for _ in range(20):
                template = layout.choice(SITE_NAMES_MAJOR if major else SITE_NAMES_SMALL)
                name = template.format(road=road, estate=estate, community=community,
                                       n=layout.randint(1, 30), num=layout.randint(1, 300))
                if name not in used_names:
                    break
            used_names.add(name)
            status = statuses[i]
            start_days = -layout.randint(30, 400) if major else -layout.randint(3, 40)
            end_days = layout.randint(60, 700) if major else layout.randint(5, 60)
            if status == "expired":
                status, end_days = "active", -layout.randint(3, 20)
            prefix = "GD" if major else "XS"
            placed.append(_Site(
                site_id=f"{prefix}-{i + 1:03d}", name=name, contractor=layout.choice(CONTRACTORS),
                kind="major" if major else "small_scattered", lat=lat, lon=lon, radius_m=radius,
                permit_from_days=start_days, permit_until_days=end_days,
                work_hours=layout.choice(WORK_HOURS_MAJOR if major else WORK_HOURS_SMALL), status=status,
            ))
        return placed

    # ---------------------------------------------------------------- time

    def _start(self, now: datetime) -> datetime:
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        if self.origin is None:
            self.origin = now
        return self.origin

    def storm_intensity(self, now: datetime) -> float:
        """0..1: the storm's strength at `now` (0 unless the scenario is rainstorm)."""
        if self.scenario != "rainstorm":
            return 0.0
        into_cycle = (now - self._start(now)) % (self.storm + self.calm)
        return storm_curve(into_cycle / self.storm) if into_cycle < self.storm else 0.0

    def peak_time(self, cycle: int = 0) -> datetime:
        """The middle of the storm's peak in the given cycle (needs an origin: a first `now` or `start`)."""
        if self.origin is None:
            raise ValueError("no origin yet: pass start= or call whitelist()/next_batch() first")
        return self.origin + (self.storm + self.calm) * cycle + self.storm * 0.45

    def _local(self, now: datetime) -> datetime:
        return now.astimezone(self.tz)

    def is_rush_hour(self, now: datetime) -> bool:
        return self.scenario == "rush_hour" or _in_rush_hour(self._local(now))

    def source_weights(self, now: datetime) -> dict[str, float]:
        hour = self._local(now).hour
        w = dict(BASE_WEIGHT)
        if self.is_rush_hour(now):
            w["traffic"] *= RUSH_FACTOR
        night = hour < 6
        if night and self.scenario != "rush_hour":
            w["traffic"] *= 0.4
        if night:
            w["city"] *= 0.35
            w["construction"] *= 0.4
        if self.scenario == "rainstorm":
            w["flood"] *= 3.0
            w["construction"] *= 0.5
        return w

    # ---------------------------------------------------------------- public API

    def whitelist(self, now: datetime) -> list[dict]:
        """The site registrations (SiteRegistration payloads), permits relative to the first `now`."""
        origin = self._local(self._start(now))
        day0 = origin.replace(hour=0, minute=0, second=0, microsecond=0)
        out = []
        for s in self._sites:
            start = day0 + timedelta(days=s.permit_from_days)
            until = day0 + timedelta(days=s.permit_until_days, hours=23, minutes=59, seconds=59)
            out.append({
                "site_id": s.site_id, "name": s.name, "contractor": s.contractor, "kind": s.kind,
                "lat": s.lat, "lon": s.lon, "radius_m": s.radius_m,
                "permit_from": start.isoformat(timespec="seconds"),
                "permit_until": until.isoformat(timespec="seconds"),
                "work_hours": s.work_hours, "status": s.status,
            })
        return out

    def next_batch(self, now: datetime, n: int) -> list[tuple[str, bytes | dict]]:
        return [(e.source, e.payload) for e in self.generate(now, n)]

    def generate(self, now: datetime, n: int) -> list[SimEvent]:
        """n events of the four sources mixed by `source_weights`, all at `now`: volume on demand for
        benchmarks and load, not a sub-district's day (that is `due`)."""
        self._start(now)
        weights = self.source_weights(now)
        sources, cum = list(weights), list(weights.values())
        return [self._emit(source, self._make(source, now))
                for source in (self._rng.choices(sources, weights=cum)[0] for _ in range(n))]

    def report_rate(self, source: str, kind: str, now: datetime) -> float:
        """Reports per hour of one stream of REPORTS_PER_HOUR at `now`: times intensity, the night's
        lull, the rush hours and the storm."""
        rate = REPORTS_PER_HOUR[source][kind] * self.intensity
        if source == "traffic" and self.is_rush_hour(now):
            rate *= RUSH_GAIN.get(kind, 1.0)
        elif self._local(now).hour < 6:
            rate *= NIGHT_FACTOR[source]
        return rate * max(0.0, 1.0 + STORM_GAIN.get((source, kind), 0.0) * self.storm_intensity(now))

    def _stations(self) -> list[tuple[str, tuple]]:
        stations = ([("rainfall", g) for g in self._gauges] + [("water_level", w) for w in self._water]
                    + [("waterlogging", s) for s in self._spots] + [("pump_station", p) for p in self._pumps])
        if self.scenario == "rainstorm":  # as in generate: the signal is the storm's
            stations.append(("typhoon_signal", self._typhoon))
        return stations

    def _readings(self, since: datetime, now: datetime) -> list[tuple[datetime, str, dict]]:
        """The readings due in (since, now]: station k of n of a kind at origin + k/n of its interval
        + whole intervals; a site's camera the same way, in its working hours only."""
        origin = self.origin
        assert origin is not None
        due: list[tuple[datetime, str, dict]] = []

        def times(every: timedelta, k: int, n: int):
            offset = every * k / n
            first = math.floor((since - origin - offset) / every) + 1
            last = math.floor((now - origin - offset) / every)
            return [origin + offset + every * m for m in range(max(first, 0), last + 1)]

        stations = self._stations()
        for kind in READING_EVERY:
            of_kind = [st for k, st in stations if k == kind]
            for k, station in enumerate(of_kind):
                for at in times(READING_EVERY[kind], k, len(of_kind)):
                    if kind == "water_level" and station[0] == self.silent_station(at):
                        continue
                    due.append((at, "flood", {"kind": kind, "station": station}))
        for k, site in enumerate(self._active_sites):
            for at in times(SITE_CAMERA_EVERY, k, len(self._active_sites)):
                if in_spans(site.work_hours, self._local(at).time()):
                    due.append((at, "construction", {"what": "registered", "site": site}))
        return due

    def _poisson(self, mean: float) -> int:
        if mean > 30:  # Knuth's loop needs exp(-mean) above underflow and gets slow; the normal is close
            return max(0, round(self._rng.gauss(mean, math.sqrt(mean))))
        limit, n, product = math.exp(-mean), 0, self._rng.random()
        while product > limit:
            n += 1
            product *= self._rng.random()
        return n

    def _reports(self, since: datetime, now: datetime) -> list[tuple[datetime, str, dict]]:
        """Poisson arrivals of every stream in (since, now], its rate taken once per REPORT_SLICE."""
        due: list[tuple[datetime, str, dict]] = []
        start = since
        while start < now:
            end = min(start + REPORT_SLICE, now)
            span, middle = end - start, start + (end - start) / 2
            for source, kinds in REPORTS_PER_HOUR.items():
                field = {"city": "channel", "traffic": "kind", "construction": "what"}[source]
                for kind in kinds:
                    for _ in range(self._poisson(self.report_rate(source, kind, middle) * span / timedelta(hours=1))):
                        due.append((start + span * self._rng.random(), source, {field: kind}))
            start = end
        return due

    def due(self, now: datetime) -> list[SimEvent]:
        """What the sub-district sends after the previous call up to `now`, in time order (the first
        call: every station's first reading): the stations' readings at their intervals and the reports
        at `report_rate` per hour. Each event is made at its own moment; about 1% are malformed, as in
        `generate`. Call it every second or so."""
        self._start(now)
        since = self._due_until
        if since is None:
            due = [(now, "flood", {"kind": kind, "station": station}) for kind, station in self._stations()]
        elif now <= since:
            return []
        else:
            due = sorted(self._readings(since, now) + self._reports(since, now), key=lambda d: d[0])
        self._due_until = now
        out = []
        for at, source, forced in due:
            # Readings are each station's own; reports may be another report of a recent problem.
            reading = source == "flood" or forced.get("what") == "registered"
            payload = getattr(self, f"_{source}")(at, **forced) if reading else self._make(source, at, **forced)
            out.append(self._emit(source, payload))
        return out

    def _emit(self, source: str, payload: dict) -> SimEvent:
        malformed = self._rng.random() < MALFORMED_SHARE
        if malformed:
            self.malformed += 1
        self.counts[source] += 1
        return SimEvent(source, self._corrupt(source, payload) if malformed else payload, malformed)

    # ---------------------------------------------------------------- event makers

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _when(self, now: datetime, max_lag_s: float) -> str:
        return _rfc3339(now - timedelta(seconds=self._rng.uniform(0, max_lag_s)), self.tz)

    def _make(self, source: str, now: datetime, **forced: Any) -> dict:
        recent = self._recent.get(source)
        if recent and self._rng.random() < REPEAT_SHARE[source]:
            previous, plain = self._rng.choice(list(recent))
            return self._repeat(source, previous, plain, now)
        payload = getattr(self, f"_{source}")(now, **forced)
        if recent is not None:
            recent.append((payload, self._plain))
        return payload

    def _repeat(self, source: str, previous: dict, plain: str, now: datetime) -> dict:
        """Another report of the same problem: same kind, a few metres away, a new id."""
        p = dict(previous)
        p["lat"], p["lon"] = self._jitter(p["lat"], p["lon"], 8)
        if source == "city":
            channel = self._rng.choice(["hotline_12345", "hotline_12345", "mobile_app", "grid_patrol"])
            p["channel"] = channel
            p["case_no"] = self._case_no(channel, now)
            p["reported_at"] = self._when(now, 120)
            p.pop("reporter_phone", None)
            if channel in ("hotline_12345", "mobile_app"):
                p["reporter_phone"] = self._phone()
            p["description"] = self._rng.choice(["又有人反映：", "重复投诉：", "问题仍未解决："]) + plain
        else:
            p["event_id"] = self._uuid()
            p["observed_at"] = self._when(now, 30)
        return p

    # traffic -------------------------------------------------------------

    def _traffic(self, now: datetime, kind: str | None = None) -> dict:
        rng = self._rng
        rush = self.is_rush_hour(now)
        storm = self.storm_intensity(now)
        weights = dict(TRAFFIC_WEIGHTS)
        if rush:
            weights["congestion"] *= 2.5
            weights["accident"] *= 1.5
        if storm > 0.3:
            weights["accident"] *= 2
            weights["road_obstruction"] *= 3
            weights["congestion"] *= 1.5
        if kind is None:
            kind = rng.choices(list(weights), weights=list(weights.values()))[0]
        cid, lat, lon = self._place()
        road, _, _ = self._names(rng, cid)
        p: dict[str, Any] = {"event_id": self._uuid(), "type": kind, "road": road, "lat": lat, "lon": lon,
                             "observed_at": self._when(now, 20)}
        flooded = self._flooded_spots(now) if kind == "congestion" else []
        if flooded and rng.random() < 0.5:
            # The road above a waterlogged underpass jams, about 200 m from it (rules.yaml 积水致拥堵): one
            # place per spot, so its reports merge into one congestion ticket.
            sid, name, _, _, slat, slon = rng.choice(flooded)
            p["lat"] = round(slat + (200 + rng.uniform(-15, 15)) / 111_320.0, 6)
            p["lon"] = round(slon + rng.uniform(-15, 15) / (111_320.0 * math.cos(math.radians(slat))), 6)
            p["road"] = f"{name}上方道路"
        if kind == "congestion":
            p["speed_kmh"] = round(rng.uniform(3, 22) if rush or flooded else rng.uniform(12, 38), 1)
            p["camera_id"] = f"HW-CAM-T{rng.randint(1, 60):03d}"
            p["confidence"] = round(rng.uniform(0.7, 0.99), 2)
        elif kind == "accident":
            p["vehicles"] = rng.choices([1, 2, 3, 4, 5, 6], weights=[20, 55, 15, 6, 3, 1])[0]
            p["injuries"] = rng.choices([0, 1, 2, 3], weights=[75, 15, 7, 3])[0]
            p["lanes_blocked"] = rng.choices([0, 1, 2, 3], weights=[30, 45, 20, 5])[0]
            if rng.random() < 0.5:
                p["intersection_id"] = f"HW-INT-{rng.randint(1, 40):03d}"
        elif kind == "illegal_parking":
            p["lanes_blocked"] = rng.choices([0, 1], weights=[70, 30])[0]
            p["camera_id"] = f"HW-CAM-T{rng.randint(1, 60):03d}"
            p["confidence"] = round(rng.uniform(0.6, 0.99), 2)
        elif kind == "signal_fault":
            p["intersection_id"] = f"HW-INT-{rng.randint(1, 40):03d}"
            p["road"] = f"{road}与{rng.choice(ROAD_POOL)}交叉口"
            if rng.random() < 0.3:
                p["lanes_blocked"] = rng.randint(1, 3)
        elif kind == "road_obstruction":
            p["lanes_blocked"] = rng.choices([1, 2, 3], weights=[60, 30, 10])[0]
            if rng.random() < 0.5:
                p["camera_id"] = f"HW-CAM-T{rng.randint(1, 60):03d}"
        else:  # wrong_way
            p["speed_kmh"] = round(rng.uniform(15, 55), 1)
            p["camera_id"] = f"HW-CAM-T{rng.randint(1, 60):03d}"
            p["confidence"] = round(rng.uniform(0.75, 0.99), 2)
        return p

    # flood ---------------------------------------------------------------

    def _flooded_spots(self, now: datetime) -> list:
        """The waterlogging spots under water now (as _flood grades them: above the spot's threshold)."""
        if self.scenario != "rainstorm":
            return []
        lagged = self.storm_intensity(now - self.storm * 0.05)
        return [spot for spot in self._spots if lagged > spot[2]]

    def silent_station(self, now: datetime) -> str | None:
        """In the rainstorm scenario one river gauge loses its link every cycle, from 10 to 50 minutes
        in: longer than its heartbeat's 30 minutes (rules.yaml heartbeats), so it goes offline and then
        recovers."""
        if self.scenario != "rainstorm":
            return None
        into_cycle = (now - self._start(now)) % (self.storm + self.calm)
        return self._water[0][0] if SILENT_FROM <= into_cycle < SILENT_UNTIL else None

    def _flood(self, now: datetime, kind: str | None = None, station: tuple | None = None) -> dict:
        """A reading: of `kind` from `station` (one of its layout tuples) when given, else drawn."""
        rng = self._rng
        storm = self.scenario == "rainstorm"
        kinds = {"rainfall": 5, "water_level": 4, "waterlogging": 5, "pump_station": 3}
        if storm:
            kinds["typhoon_signal"] = 0.6
        if kind is None:
            kind = rng.choices(list(kinds), weights=list(kinds.values()))[0]
        intensity = self.storm_intensity(now)
        # Rivers and standing water lag the rain a little.
        lagged = self.storm_intensity(now - self.storm * 0.05) if storm else 0.0
        when = self._when(now, 15)
        if rng.random() < 0.2:  # some gauges report in UTC
            when = (datetime.fromisoformat(when).astimezone(timezone.utc)
                    .isoformat(timespec="seconds").replace("+00:00", "Z"))
        if kind == "rainfall":
            sid, name, factor, lat, lon = station or rng.choice(self._gauges)
            if storm:
                value = (1.5 + 105 * intensity * factor) * rng.uniform(0.95, 1.05) if intensity > 0.02 else 0.0
            else:
                value = rng.uniform(0.2, 6.0) if rng.random() < 0.2 else 0.0
            return {"station_id": sid, "station_name": name, "kind": kind, "value": round(value, 1),
                    "lat": lat, "lon": lon, "observed_at": when}
        if kind == "water_level":
            silent = self.silent_station(now)
            sid, name, base, warn, danger, factor, tidal, lat, lon = station or rng.choice(
                [w for w in self._water if w[0] != silent])
            level = base + rng.uniform(-0.05, 0.05)
            if tidal:  # semi-diurnal tide, 12.42 h
                level += 0.45 * math.sin(2 * math.pi * now.timestamp() / (12.42 * 3600))
            if storm:
                level += (danger + 0.25 - base) * lagged * factor
            return {"station_id": sid, "station_name": name, "kind": kind, "value": round(level, 2),
                    "warning_level": warn, "danger_level": danger, "lat": lat, "lon": lon, "observed_at": when}
        if kind == "waterlogging":
            sid, name, threshold, depth, lat, lon = station or rng.choice(self._spots)
            if storm and lagged > threshold:
                value = depth * (lagged - threshold) / (1 - threshold) * rng.uniform(0.92, 1.08)
            else:
                value = rng.choice([0.0, 0.0, 0.0, rng.uniform(0.5, 3.0)])
            return {"station_id": sid, "station_name": name, "kind": kind, "value": round(value, 1),
                    "lat": lat, "lon": lon, "observed_at": when}
        if kind == "pump_station":
            sid, name, lat, lon = station or rng.choice(self._pumps)
            if storm and intensity > 0.25:
                status = rng.choices(["running", "fault", "offline"], weights=[95, 4, 1])[0]
            elif storm:
                status = rng.choices(["standby", "running", "fault"], weights=[60, 38, 2])[0]
            else:
                status = rng.choices(["standby", "running", "fault", "offline"], weights=[85, 14, 0.5, 0.5])[0]
            return {"station_id": sid, "station_name": name, "kind": kind, "status": status,
                    "lat": lat, "lon": lon, "observed_at": when}
        sid, name, lat, lon = self._typhoon
        signal_ = ("white" if intensity < 0.15 else "blue" if intensity < 0.4
                   else "yellow" if intensity < 0.7 else "orange")
        return {"station_id": sid, "station_name": name, "kind": kind, "signal": signal_,
                "lat": lat, "lon": lon, "observed_at": when}

    # city ----------------------------------------------------------------

    def _phone(self) -> str:
        return f"1{self._rng.choice('3456789')}{self._rng.randint(0, 999_999_999):09d}"

    def _case_no(self, channel: str, now: datetime) -> str:
        self._seq += 1
        return f"{CASE_PREFIX[channel]}{self._local(now):%Y%m%d}{self._tag}{self._seq:06d}"

    def _address(self, cid: str | None) -> tuple[str, str]:
        rng = self._rng
        road, estate, _ = self._names(rng, cid)
        form = rng.randrange(5)
        if form == 0:
            addr = f"{road}{rng.randint(1, 300)}号附近"
        elif form == 1:
            addr = f"{road}与{rng.choice(ROADS.get(cid or '', ROAD_POOL) + ROAD_POOL)}交叉口"
        elif form == 2:
            addr = f"{estate}{rng.randint(1, 30)}栋楼下"
        elif form == 3:
            addr = f"{road}{rng.choice(LANDMARKS)}旁"
        else:
            addr = f"{estate}南门"
        return addr, estate

    def _city(self, now: datetime, channel: str | None = None) -> dict:
        rng = self._rng
        hour = self._local(now).hour
        storm = self.storm_intensity(now)
        weights = dict(CITY_WEIGHTS)
        if hour >= 21 or hour < 2:
            weights["noise_complaint"] *= 4
        if storm > 0.3:
            for cat in STORM_TEXTS:
                weights[cat] *= 3
        if channel == "camera_ai":  # the cameras see only some problems
            weights = {c: w for c, w in weights.items() if c in CAMERA_CATEGORIES}
        category = rng.choices(list(weights), weights=list(weights.values()))[0]
        if channel is None:
            channels = {"hotline_12345": 40, "grid_patrol": 30, "mobile_app": 15,
                        "camera_ai": 15 if category in CAMERA_CATEGORIES else 0}
            channel = rng.choices(list(channels), weights=list(channels.values()))[0]
        cid, lat, lon = self._place()
        addr, estate = self._address(cid)
        texts = CITY_TEXTS[category]
        if storm > 0.3 and category in STORM_TEXTS and rng.random() < 0.7:
            texts = STORM_TEXTS[category]
        text = rng.choice(texts).format(addr=addr, estate=estate, n=rng.randint(1, 30))
        self._plain = text
        p: dict[str, Any] = {"case_no": self._case_no(channel, now), "channel": channel, "category": category}
        if channel == "camera_ai":
            text = (f"视频AI识别：{CITY_LABEL[category]}，置信度{rng.uniform(0.7, 0.98):.2f}，"
                    f"摄像头HW-CAM-C{rng.randint(1, 80):03d}，位置{addr}。")
        elif channel == "grid_patrol":
            text = f"网格员巡查发现：{text}"
        if channel in ("hotline_12345", "mobile_app"):
            if channel == "hotline_12345" or rng.random() < 0.5:
                p["reporter_phone"] = self._phone()
            if rng.random() < 0.15:
                text = text.rstrip("。") + rng.choice(CONTACT_TEXTS).format(phone=self._format_phone())
        p.update(description=text, address=addr, lat=lat, lon=lon, reported_at=self._when(now, 120))
        return p

    def _format_phone(self) -> str:
        phone = self._phone()
        style = self._rng.randrange(4)
        if style == 1:
            return f"{phone[:3]}-{phone[3:7]}-{phone[7:]}"
        if style == 2:
            return f"{phone[:3]} {phone[3:7]} {phone[7:]}"
        if style == 3:
            return f"0755-{self._rng.randint(2000_0000, 8999_9999)}"
        return phone

    # construction --------------------------------------------------------

    def _near_site(self, site: _Site) -> tuple[float, float]:
        lat, lon = _offset(site.lat, site.lon, self._rng.uniform(0, site.radius_m * 0.7),
                           self._rng.uniform(0, 2 * math.pi))
        return round(lat, 6), round(lon, 6)

    def _unregistered_place(self) -> tuple[float, float]:
        for _ in range(200):
            _, lat, lon = self._place()
            if all(distance_m(lat, lon, s.lat, s.lon) > s.radius_m + 60 for s in self._sites):
                return lat, lon
        return lat, lon

    def _construction(self, now: datetime, what: str | None = None, site: _Site | None = None) -> dict:
        """An observation: of `what` (a key of `kinds` below) when given, else drawn; `site` is the
        registered site whose camera sees its own work (with what="registered")."""
        rng = self._rng
        local = self._local(now)
        night = not (dtime(6) <= local.time() < dtime(22))
        storm = self.storm_intensity(now)
        in_hours = [s for s in self._active_sites if in_spans(s.work_hours, local.time())]
        kinds = {"registered": 45 if in_hours else 8, "invalid_site": 8, "unregistered": 12,
                 "noise": 15, "dust": 3 if storm > 0.3 else 12, "no_helmet": 6, "unsafe_scaffold": 3}
        if what is None:
            what = rng.choices(list(kinds), weights=list(kinds.values()))[0]
        p: dict[str, Any] = {"event_id": self._uuid()}
        if what == "registered":
            site = site or rng.choice(in_hours or self._active_sites)
            kind = "activity_detected"
        elif what == "invalid_site":
            site = rng.choice(self._invalid_sites) if self._invalid_sites else None
            kind = "activity_detected"
        elif what == "unregistered":
            kind = "activity_detected"
        else:
            kind = what
            if rng.random() < 0.75:
                site = rng.choice(in_hours or self._sites)
        if site is not None:
            lat, lon = self._near_site(site)
        else:
            lat, lon = self._unregistered_place()
        p.update(kind=kind, lat=lat, lon=lon, observed_at=self._when(now, 30))
        if site is not None and rng.random() < 0.6:
            p["site_id"] = site.site_id
            p["camera_id"] = f"{site.site_id}-CAM{rng.randint(1, 4)}"
        else:
            p["camera_id"] = f"HW-CAM-G{rng.randint(1, 50):03d}"
        if kind == "noise":
            # GB 12523: 70 dB(A) by day, 55 at night.
            p["value"] = round(rng.uniform(45, 68) if night else rng.uniform(58, 84), 1)
        elif kind == "dust":
            p["value"] = round(rng.uniform(40, 120) if storm > 0.3 else rng.uniform(60, 280), 1)
        return p

    # malformed -----------------------------------------------------------

    REQUIRED = {
        "traffic": ["event_id", "type", "road", "lat", "lon", "observed_at"],
        "flood": ["station_id", "kind", "lat", "lon", "observed_at"],
        "city": ["case_no", "channel", "category", "description", "address", "lat", "lon", "reported_at"],
        "construction": ["event_id", "kind", "lat", "lon", "observed_at"],
    }
    ENUM_FIELD = {"traffic": ("type", ["meteor_strike", "pothole", "ACCIDENT", "交通事故"]),
                  "flood": ("kind", ["soil_moisture", "tide", "WATER_LEVEL"]),
                  "city": ("category", ["stray_dogs", "graffiti", "垃圾满溢"]),
                  "construction": ("kind", ["crane_overload", "fire", "NOISE"])}

    def _corrupt(self, source: str, good: dict) -> bytes | dict:
        rng = self._rng
        how = rng.choice(["truncated", "gbk", "text", "not_object", "wrong_type", "naive_time",
                          "unknown_enum", "missing", "swapped"])
        bad = dict(good)
        time_field = "reported_at" if source == "city" else "observed_at"
        if how == "truncated":
            raw = json.dumps(good, ensure_ascii=False).encode()
            return raw[: rng.randint(5, len(raw) - 2)]
        if how == "gbk":
            return "设备离线 传感器故障 数据异常".encode("gbk")
        if how == "text":
            return rng.choice([b"<html><body><h1>502 Bad Gateway</h1></body></html>",
                               b"ERROR: upstream timeout", b""])
        if how == "not_object":
            return rng.choice([b"[]", b"null", b"42", b'"ok"'])
        if how == "wrong_type":
            field, value = rng.choice([("lat", "北纬22.5度"), ("lon", "东经113.9度"), (time_field, "今天上午")])
            bad[field] = value
        elif how == "naive_time":
            bad[time_field] = datetime.fromisoformat(
                good[time_field].replace("Z", "+00:00")).replace(tzinfo=None).isoformat(sep=" ")
        elif how == "unknown_enum":
            field, values = self.ENUM_FIELD[source]
            bad[field] = rng.choice(values)
        elif how == "missing":
            required = list(self.REQUIRED[source])
            if source == "flood":
                required.append({"pump_station": "status", "typhoon_signal": "signal"}.get(good["kind"], "value"))
            bad.pop(rng.choice(required))
        else:  # swapped: lon in lat, which is out of range
            bad["lat"], bad["lon"] = good["lon"], good["lat"]
        return bad


# ------------------------------------------------------------------ events as Kafka records

def encode(payload: bytes | dict) -> bytes:
    """An event's payload as the record value a source would send: JSON (UTF-8, not ASCII-escaped), or the
    malformed bytes as they are."""
    if isinstance(payload, bytes):
        return payload
    return json.dumps(payload, ensure_ascii=False).encode()


def record_key(payload: bytes | dict) -> bytes | None:
    """The record key a source would send: flood readings keyed by station, everything else unkeyed."""
    key = payload.get("station_id") if isinstance(payload, dict) else None
    return key.encode() if isinstance(key, str) else None
