"""board.yaml: the board's alarm policy and basemap load as shipped, default when the file is absent, and
every bad value is refused with the exact line an operator reads."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from schemas.config import AlarmKind, ConfigError, load_config


def errors_after(copy: Path, change: Callable[[dict], object]) -> list[str]:
    path = copy / "board.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(copy)
    return info.value.errors


def test_the_shipped_policy_sounds_five_kinds_each_in_its_own_tone(config):
    alarms = config.board.alarms
    assert (alarms.interval_s, alarms.repeat_after_s) == (30, 300)
    assert set(alarms.tones) == set(AlarmKind)
    assert len({(t.frequency_hz, t.beeps) for t in alarms.tones.values()}) == len(AlarmKind)
    assert config.board.basemap is None   # the shipped map is the offline sketch


def test_without_the_file_the_defaults_apply(copy, config):
    (copy / "board.yaml").unlink()
    assert load_config(copy).board == config.board


def set_in(path: str, value) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        *parents, last = path.split(".")
        node = data
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return change


TILES = "https://tiles.example.gov.cn/{z}/{x}/{y}.png"


@pytest.mark.parametrize(("path", "value", "line"), [
    ("alarms.interval", "10s", "board.yaml: alarms.interval: '10s' is under 30s: the board sounds at most twice a minute"),
    ("alarms.interval", "soon", "board.yaml: alarms.interval: bad duration 'soon': use a number with s, m or h, e.g. 90m"),
    ("alarms.repeat_after", "30s", "board.yaml: alarms.repeat_after: '30s' is under 1m"),
    ("alarms.tones.escalated", {"frequency_hz": 1040, "beeps": 3},
     "board.yaml: alarms.tones: escalated sounds like new_red (1040 Hz x 3): give each kind its own tone"),
    ("alarms.tones.merged", {"frequency_hz": 300},
     "board.yaml: alarms.tones.merged.[key]: Input should be 'new_red', 'unacknowledged_red', 'escalated', "
     "'reported' or 'response_raised'"),
    ("alarms.tones.new_red", {"frequency_hz": 50000},
     "board.yaml: alarms.tones.new_red.frequency_hz: Input should be less than or equal to 2000"),
    ("alarms.loudness", 3, "board.yaml: alarms.loudness: Extra inputs are not permitted"),
    ("basemap", {"url": "ftp://tiles/{z}/{x}/{y}", "attribution": "x"},
     "board.yaml: basemap.url: 'ftp://tiles/{z}/{x}/{y}' is not an http(s) address ({s} may only stand in the host)"),
    ("basemap", {"url": "https://tiles.example.gov.cn/{z}/{x}.png", "attribution": "x"},
     "board.yaml: basemap.url: 'https://tiles.example.gov.cn/{z}/{x}.png' lacks {y}"),
    ("basemap", {"url": TILES},
     "board.yaml: basemap.attribution: Field required"),
    ("basemap", {"url": TILES, "attribution": "x", "subdomains": ["0", "1"]},
     "board.yaml: basemap: subdomains and {s} in url go together: give both or neither"),
    ("basemap", {"url": TILES, "attribution": "x", "min_zoom": 16, "max_zoom": 12},
     "board.yaml: basemap: min_zoom 16 is above max_zoom 12"),
])
def test_a_bad_value_is_refused_with_its_line(copy, path, value, line):
    assert errors_after(copy, set_in(path, value)) == [line]


def test_a_basemap_names_the_origins_its_tiles_come_from(copy):
    path = copy / "board.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["basemap"] = {"url": "https://t{s}.tianditu.gov.cn/DataServer?T=vec_w&x={x}&y={y}&l={z}&tk=k",
                       "subdomains": ["0", "1"], "attribution": "© 天地图"}
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    basemap = load_config(copy).board.basemap
    assert basemap.origins == ["https://t0.tianditu.gov.cn", "https://t1.tianditu.gov.cn"]
