"""deploy/config loads; every kind of bad file is refused with the exact line an operator reads."""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from schemas.config import ConfigError, load_config
from schemas.enums import OPS_CENTRE, Category, Severity

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / "deploy" / "config"
FILES = ("district.yaml", "rules.yaml", "routing.yaml")
SOC = Path(sys.executable).parent / "soc"


@pytest.fixture
def errors_after(copy) -> Callable[..., list[str]]:
    """errors_after("routing.yaml", change) -> ConfigError.errors once change(data) is written back."""

    def run(name: str, change: Callable[[dict], object]) -> list[str]:
        path = copy / name
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        change(data)
        path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
        return errors_of(copy)

    return run


def errors_of(directory: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(directory)
    assert str(info.value) == "\n".join(info.value.errors)
    return info.value.errors


# ------------------------------------------------------------------ the real config

def test_real_config_loads(config):
    district, rules, routing = config.district, config.rules, config.routing
    assert (district.name, district.timezone, str(district.tz)) == ("海湾街道", "Asia/Shanghai", "Asia/Shanghai")
    assert sorted(district.communities) == ["guiwan", "haibin", "liyuan", "rongshu", "shahe", "wanghai",
                                            "xingang", "yugang"]
    assert OPS_CENTRE in district.departments and district.leadership == "district_leadership"
    assert set(routing.categories) == set(Category) and set(routing.deadlines) == set(Severity)
    assert routing.red_also == [OPS_CENTRE] and routing.out_of_jurisdiction == OPS_CENTRE
    assert (rules.construction_limits.noise_day_db, rules.construction_limits.noise_night_db) == (70, 55)
    assert rules.dedup.grid_m == 150


def test_a_round_trip_through_yaml_changes_nothing(copy, errors_after):
    # The mutation helper itself must not break a good file.
    for name in FILES:
        path = copy / name
        path.write_text(yaml.safe_dump(yaml.safe_load(path.read_text(encoding="utf-8")), allow_unicode=True),
                        encoding="utf-8")
    assert load_config(copy) == load_config(CONFIG_DIR)


# ------------------------------------------------------------------ unknown keys

@pytest.mark.parametrize("name, change, line", [
    ("district.yaml", lambda d: d["departments"]["traffic_police"].update(colour="red"),
     "district.yaml: departments.traffic_police.colour: Extra inputs are not permitted"),
    ("district.yaml", lambda d: d["calendar"].update(holiday=["2026-10-01"]),
     "district.yaml: calendar.holiday: Extra inputs are not permitted"),
    ("rules.yaml", lambda d: d.update(dedup_window=30),
     "rules.yaml: dedup_window: Extra inputs are not permitted"),
    ("rules.yaml", lambda d: d["traffic"]["accident"]["thresholds"][1].update(at_most=3),
     "rules.yaml: traffic.accident.thresholds.1.at_most: Extra inputs are not permitted"),
    ("routing.yaml", lambda d: d["deadlines"]["red"].update(escalate="5m"),
     "routing.yaml: deadlines.red.escalate: Extra inputs are not permitted"),
])
def test_unknown_key(errors_after, name, change, line):
    assert errors_after(name, change) == [line]


@pytest.mark.parametrize("change, line", [
    (lambda d: d["followup"].update(within="2 hours"),
     "routing.yaml: followup.within: bad duration '2 hours': use a number and s, m, h, d or wh (working hours)"),
    (lambda d: d["followup"].update(channels=["wechat"]),
     "routing.yaml: followup.channels.0: Input should be 'hotline_12345', 'mobile_app', 'grid_patrol' or "
     "'camera_ai'"),
    (lambda d: d["followup"].update(close_after_unreachable=0),
     "routing.yaml: followup.close_after_unreachable: Input should be greater than or equal to 1"),
])
def test_followup_rules_are_checked(errors_after, change, line):
    assert errors_after("routing.yaml", change) == [line]


# ------------------------------------------------------------------ cross-references

def test_undefined_department_in_routing_categories(errors_after):
    assert errors_after("routing.yaml", lambda d: d["categories"]["traffic_accident"].update(
        department="trafic_police")) == [
        "routing.yaml: categories.traffic_accident.department: undefined department 'trafic_police'"]


def test_supporting_departments_of_a_category_are_defined_and_not_the_lead(errors_after):
    assert errors_after("routing.yaml", lambda d: d["categories"]["traffic_accident"].update(
        support=["city_managment", "traffic_police"])) == [
        "routing.yaml: categories.traffic_accident.support.0: undefined department 'city_managment'",
        "routing.yaml: categories.traffic_accident.support.1: 'traffic_police' is the lead department"]


def test_the_time_to_rule_on_a_dispute_is_a_duration(errors_after):
    assert errors_after("routing.yaml", lambda d: d["disputes"].update(rule_within="soon")) == [
        "routing.yaml: disputes.rule_within: bad duration 'soon': use a number and s, m, h, d or wh (working hours)"]


def test_undefined_community_in_community_overrides(errors_after):
    def change(d):
        d["community_overrides"]["yugan"] = d["community_overrides"].pop("yugang")
    assert errors_after("routing.yaml", change) == [
        "routing.yaml: community_overrides.yugan: undefined community 'yugan'"]


def test_undefined_department_in_community_overrides(errors_after):
    assert errors_after("routing.yaml", lambda d: d["community_overrides"]["yugang"].update(
        city_street_order="ws_yugan")) == [
        "routing.yaml: community_overrides.yugang.city_street_order: undefined department 'ws_yugan'"]


def test_undefined_department_in_red_also(errors_after):
    assert errors_after("routing.yaml", lambda d: d["red_also"].append("mayor")) == [
        "routing.yaml: red_also.1: undefined department 'mayor'"]


def test_undefined_out_of_jurisdiction_department(errors_after):
    assert errors_after("routing.yaml", lambda d: d.update(out_of_jurisdiction="ops_center")) == [
        "routing.yaml: out_of_jurisdiction: undefined department 'ops_center'"]


def test_bad_supervisor_reference(errors_after):
    assert errors_after("district.yaml", lambda d: d["departments"]["ws_haibin"].update(
        supervisor="city_managment")) == [
        "district.yaml: departments.ws_haibin.supervisor: undefined department 'city_managment'"]


def test_undefined_leadership(errors_after):
    assert errors_after("district.yaml", lambda d: d.update(leadership="mayor")) == [
        "district.yaml: leadership: undefined department 'mayor'"]


def test_ops_centre_must_exist(errors_after):
    def change(d):
        d["departments"].pop(OPS_CENTRE)
    errors = errors_after("district.yaml", change)
    supervised = ["traffic_police", "flood_control", "city_management", "construction_safety", "environment"]
    assert errors == [
        *[f"district.yaml: departments.{d}.supervisor: undefined department 'ops_centre'" for d in supervised],
        "district.yaml: departments: ops_centre must be defined",
        "routing.yaml: red_also.0: undefined department 'ops_centre'",
        "routing.yaml: out_of_jurisdiction: undefined department 'ops_centre'",
    ]


def test_workstation_of_an_undefined_community(errors_after):
    assert errors_after("district.yaml", lambda d: d["departments"]["ws_haibin"].update(community="haibing")) == [
        "district.yaml: departments.ws_haibin.community: undefined community 'haibing'",
        "district.yaml: communities.haibin: no workstation department for this community",
    ]


def test_undefined_measure_in_rules_thresholds(errors_after):
    assert errors_after("rules.yaml", lambda d: d["traffic"]["accident"]["thresholds"][0].update(
        measure="injured")) == [
        "rules.yaml: traffic.accident.thresholds.0.measure: undefined measure 'injured' "
        "(known: confidence, injuries, lanes_blocked, speed_deficit_kmh, vehicles)"]


@pytest.mark.parametrize("source, kind, line", [
    ("traffic", "crash", "rules.yaml: traffic.crash: unknown traffic kind 'crash'"),
    ("construction", "site_fire", "rules.yaml: construction.site_fire: unknown construction kind 'site_fire'"),
    ("city", "graffiti", "rules.yaml: city.graffiti: unknown city kind 'graffiti'"),
])
def test_unknown_kind_in_rules(errors_after, source, kind, line):
    assert errors_after("rules.yaml", lambda d: d[source].update({kind: {"base": "blue"}})) == [line]


@pytest.mark.parametrize("source, kind", [("flood", "pump_station"), ("construction", "site_dust"),
                                          ("traffic", "wrong_way")])
def test_missing_rule_for_a_kind(errors_after, source, kind):
    assert errors_after("rules.yaml", lambda d: d[source].pop(kind)) == [f"rules.yaml: {source}: no rule for {kind}"]


# ------------------------------------------------------------------ values

SEVERITIES = "Input should be 'red', 'orange', 'yellow' or 'blue'"


@pytest.mark.parametrize("name, change, line", [
    ("rules.yaml", lambda d: d["traffic"]["accident"].update(base="purple"),
     f"rules.yaml: traffic.accident.base: {SEVERITIES}"),
    ("rules.yaml", lambda d: d["flood"]["rainfall"]["thresholds"][2].update(severity="critical"),
     f"rules.yaml: flood.rainfall.thresholds.2.severity: {SEVERITIES}"),
    ("routing.yaml", lambda d: d["deadlines"].update(black=d["deadlines"].pop("red")),
     f"routing.yaml: deadlines.black.[key]: {SEVERITIES}"),
])
def test_bad_severity_value(errors_after, name, change, line):
    assert errors_after(name, change) == [line]


@pytest.mark.parametrize("path, value, line", [
    (("deadlines", "red", "accept"), "10 minutes",
     "routing.yaml: deadlines.red.accept: bad duration '10 minutes': use a number and s, m, h, d or wh (working hours)"),
    (("deadlines", "blue", "accept"), "4 wh",
     "routing.yaml: deadlines.blue.accept: bad duration '4 wh': use a number and s, m, h, d or wh (working hours)"),
    (("category_deadlines", "city_manhole", "red", "resolve"), "1hr",
     "routing.yaml: category_deadlines.city_manhole.red.resolve: bad duration '1hr': "
     "use a number and s, m, h, d or wh (working hours)"),
])
def test_bad_duration(errors_after, path, value, line):
    def change(d):
        for key in path[:-1]:
            d = d[key]
        d[path[-1]] = value
    assert errors_after("routing.yaml", change) == [line]


@pytest.mark.parametrize("zone", ["Asia/Shenzhen", "UTC+8", "../../etc/passwd"])
def test_bad_time_zone(errors_after, zone):
    assert errors_after("district.yaml", lambda d: d.update(timezone=zone)) == [
        f"district.yaml: timezone: unknown time zone {zone!r}"]


def test_bad_working_hours(errors_after):
    assert errors_after("district.yaml", lambda d: d["calendar"].update(work_hours=["8:30-12"])) == [
        "district.yaml: calendar.work_hours: bad time span '8:30-12': use HH:MM-HH:MM"]


@pytest.mark.parametrize("key, value", [("day_starts", "6am"), ("night_starts", "24:00"), ("day_starts", "6:00")])
def test_bad_day_or_night_start(errors_after, key, value):
    assert errors_after("rules.yaml", lambda d: d["construction_limits"].update({key: value})) == [
        f"rules.yaml: construction_limits.{key}: bad time {value!r}: use HH:MM"]


def test_missing_dedup_window_for_a_source(errors_after):
    assert errors_after("rules.yaml", lambda d: d["dedup"]["window_minutes"].pop("construction")) == [
        "rules.yaml: dedup.window_minutes: no window for construction"]


def test_zero_dedup_window(errors_after):
    assert errors_after("rules.yaml", lambda d: d["dedup"]["window_minutes"].update(city=0)) == [
        "rules.yaml: dedup.window_minutes.city: Input should be greater than 0"]


def test_missing_route_and_missing_deadline(errors_after):
    def change(d):
        d["categories"].pop("site_dust")
        d["deadlines"].pop("blue")
    assert errors_after("routing.yaml", change) == [
        "routing.yaml: categories: no route for site_dust",
        "routing.yaml: deadlines: no deadline for blue",
    ]


def test_unknown_category_in_routing(errors_after):
    errors = errors_after("routing.yaml", lambda d: d["categories"].update(city_graffiti={"department": "x"}))
    assert len(errors) == 1
    assert errors[0].startswith("routing.yaml: categories.city_graffiti.[key]: Input should be 'traffic_accident', ")


def test_bad_token_env(errors_after):
    assert errors_after("district.yaml", lambda d: d["departments"]["ops_centre"].update(token_env="soc-token")) == [
        "district.yaml: departments.ops_centre.token_env: String should match pattern '^[A-Z][A-Z0-9_]*$'"]


@pytest.mark.parametrize("change, line", [
    (lambda d: d["board_streams"].update(reserved=500),
     "district.yaml: board_streams: reserved (500) must be less than total (500)"),
    (lambda d: d["board_streams"]["per_role"].update(janitor=3),
     "district.yaml: board_streams.per_role.janitor: Extra inputs are not permitted"),
    (lambda d: d["board_streams"].update(per_person=0),
     "district.yaml: board_streams.per_person: Input should be greater than or equal to 1"),
])
def test_board_stream_limits_are_checked(errors_after, change, line):
    assert errors_after("district.yaml", change) == [line]


def test_board_stream_limits_left_out_take_their_defaults(errors_after, copy):
    path = copy / "district.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    del data["board_streams"]
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    limits = load_config(copy).district.board_streams
    assert (limits.total, limits.reserved, limits.per_person, limits.wall_screens) == (500, 50, 8, 16)
    assert limits.per_role.clerk == 300 and limits.per_role.duty_officer == 100


def test_polygon_needs_three_points(errors_after):
    assert errors_after("district.yaml", lambda d: d["communities"]["haibin"].update(
        polygon=[[113.9, 22.5], [113.91, 22.5]])) == [
        "district.yaml: communities.haibin.polygon: List should have at least 3 items after validation, not 2"]


# ------------------------------------------------------------------ files

def test_missing_file(copy):
    (copy / "routing.yaml").unlink()
    assert errors_of(copy) == [f"routing.yaml: file not found in {copy}"]


def test_missing_directory(tmp_path):
    missing = tmp_path / "nowhere"
    assert errors_of(missing) == [f"{name}: file not found in {missing}" for name in FILES]


@pytest.mark.parametrize("text, line", [
    ("dedup:\n  window_minutes: {traffic: 30\n  grid_m: 150\n",
     "rules.yaml: not valid YAML: line 3, column 9: expected ',' or '}', but got ':' "
     "(while parsing a flow mapping at line 2, column 19)"),
    ("dedup:\n\twindow_minutes: {}\n",
     "rules.yaml: not valid YAML: line 2, column 1: found character '\\t' that cannot start any token "
     "(while scanning for the next token)"),
    ("traffic: &t {}\nflood: *f\n", "rules.yaml: not valid YAML: line 2, column 8: found undefined alias 'f'"),
])
def test_invalid_yaml(copy, text, line):
    (copy / "rules.yaml").write_text(text, encoding="utf-8")
    assert errors_of(copy) == [line]


def test_empty_file(copy):
    (copy / "district.yaml").write_text("# nothing yet\n", encoding="utf-8")
    assert errors_of(copy) == ["district.yaml: (top): Input should be a valid dictionary or instance of District"]


def test_file_not_utf8(copy):
    path = copy / "district.yaml"
    path.write_bytes(path.read_text(encoding="utf-8").encode("gbk"))
    # The first line is "# 海湾街道 ..."; 海 is BA A3 in GBK, and 0xBA cannot start a UTF-8 sequence.
    assert errors_of(copy) == ["district.yaml: not UTF-8 text: byte 0xba at offset 2"]


def test_every_bad_file_is_reported_at_once(copy):
    (copy / "district.yaml").write_text("name: 海湾街道\ntimezone: Mars/Olympus\ncommunities: {}\ndepartments: {}\n",
                                        encoding="utf-8")
    (copy / "routing.yaml").unlink()
    assert errors_of(copy) == [
        "district.yaml: timezone: unknown time zone 'Mars/Olympus'",
        f"routing.yaml: file not found in {copy}",
    ]


# ------------------------------------------------------------------ soc check-config

def test_check_config_cli_on_a_bad_directory(copy):
    (copy / "routing.yaml").write_text(
        (copy / "routing.yaml").read_text(encoding="utf-8").replace("red_also: [ops_centre]",
                                                                    "red_also: [ops_centre, mayor]"),
        encoding="utf-8")
    (copy / "district.yaml").write_text(
        (copy / "district.yaml").read_text(encoding="utf-8").replace("supervisor: district_leadership",
                                                                     "supervisor: district_leader"),
        encoding="utf-8")
    done = subprocess.run([str(SOC), "check-config", str(copy)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.splitlines() == [
        "district.yaml: departments.ops_centre.supervisor: undefined department 'district_leader'",
        "routing.yaml: red_also.1: undefined department 'mayor'",
    ]


def test_check_config_cli_on_the_real_config():
    # The duty roster is checked for the 30 days from --now (the wall clock without it).
    done = subprocess.run([str(SOC), "check-config", str(CONFIG_DIR), "--now", "2027-06-30T23:59+08:00"],
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.strip() == f"{CONFIG_DIR}: ok (8 communities, 15 departments)"


def test_check_config_cli_names_every_stretch_without_someone_on_duty(copy):
    path = copy / "district.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    del data["duty"]["rotations"][2]  # the weekend and holiday officers
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    done = subprocess.run([str(SOC), "check-config", str(copy), "--now", "2026-12-01T00:30:00Z"],
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.splitlines() == [
        f"district.yaml: duty: no officer from 2026-12-{sat:02d} 08:30 to 2026-12-{sat + 2:02d} 08:30 (Asia/Shanghai)"
        for sat in (5, 12, 19, 26)
    ]


def test_check_config_cli_refuses_a_district_without_a_roster(copy):
    path = copy / "district.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    del data["duty"]
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    assert load_config(copy).district.duty.rotations == []  # an older file still loads
    done = subprocess.run([str(SOC), "check-config", str(copy)], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (1, "", "district.yaml: duty: no duty roster\n")


def test_an_intake_secret_variable_is_nobody_elses(errors_after):
    def share(data):
        data["intake"]["cap_feeds"]["szmb"]["token_env"] = "SOC_TOKEN_OPS_CENTRE"
        data["intake"]["open311"]["platform_12345"]["key_env"] = "SOC_OPEN311_KEY_CITIZEN_APP"
    assert errors_after("district.yaml", share) == [
        "district.yaml: intake.open311.platform_12345.key_env: SOC_OPEN311_KEY_CITIZEN_APP is already "
        "intake.open311.citizen_app.key_env",
        "district.yaml: intake.cap_feeds.szmb.token_env: SOC_TOKEN_OPS_CENTRE is already departments.ops_centre.token_env",
    ]


def test_an_open311_client_reports_as_the_app_or_the_hotline(errors_after):
    def grid(data):
        data["intake"]["open311"]["citizen_app"]["channel"] = "grid_patrol"
    assert errors_after("district.yaml", grid) == [
        "district.yaml: intake.open311.citizen_app.channel: Input should be 'mobile_app' or 'hotline_12345'"]


@pytest.mark.parametrize("change, line", [
    (lambda d: d["correlations"][0]["add_watchers"].update(cause=["fire_brigade"]),
     "rules.yaml: correlations.0.add_watchers.cause.0: undefined department 'fire_brigade'"),
    (lambda d: d["correlations"][0].update(window="half an hour"),
     "rules.yaml: correlations.0.window: bad duration 'half an hour': use a number with s, m or h, e.g. 90m"),
    (lambda d: d["correlations"][1].update(name=d["correlations"][0]["name"]),
     "rules.yaml: correlations: correlation names must be unique: 积水致拥堵"),
    (lambda d: d["correlations"][0]["cause"].update(category="flood"),
     "rules.yaml: correlations.0.cause.category: Input should be"),
])
def test_correlation_rules_are_checked(errors_after, change, line):
    [error] = errors_after("rules.yaml", change)
    assert error.startswith(line)


# ------------------------------------------------------------------ hotspots (高发点位)

def test_the_shipped_recurring_place_thresholds():
    found = load_config(CONFIG_DIR).rules.hotspots
    assert (found.radius_m, found.min_count, found.days, found.storms) == (100, 3, 30, 3)
    assert Category.city_sanitation in found.categories and Category.flood_device_offline not in found.categories


@pytest.mark.parametrize("change, error", [
    ({"radius_m": 0}, "rules.yaml: hotspots.radius_m: Input should be greater than 0"),
    ({"min_count": 1}, "rules.yaml: hotspots.min_count: Input should be greater than or equal to 2"),
    ({"days": 400}, "rules.yaml: hotspots.days: Input should be less than or equal to 366"),
    ({"storms": -1}, "rules.yaml: hotspots.storms: Input should be greater than or equal to 0"),
    ({"categories": ["city_manhole", "flood_waterlogging", "city_manhole"]},
     "rules.yaml: hotspots.categories: categories listed twice: city_manhole"),
    ({"radius": 100}, "rules.yaml: hotspots.radius: Extra inputs are not permitted"),
])
def test_bad_recurring_place_thresholds(errors_after, change, error):
    assert errors_after("rules.yaml", lambda d: d["hotspots"].update(change)) == [error]
