"""deploy/config/notify.yaml loads; every kind of bad file is refused with the exact line an operator reads."""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from schemas.config import ConfigError, load_config
from schemas.enums import Severity
from schemas.notify import EVENTS, load_notify

ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = ROOT / "deploy" / "config"
SOC = Path(sys.executable).parent / "soc"


@pytest.fixture
def errors_after(copy, config) -> Callable[[Callable[[dict], object]], list[str]]:
    def run(change: Callable[[dict], object]) -> list[str]:
        path = copy / "notify.yaml"
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        change(data)
        path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
        with pytest.raises(ConfigError) as info:
            load_notify(copy, config)
        return info.value.errors

    return run


def test_real_notify_yaml_loads(config):
    notify = load_notify(CONFIG_DIR, config)
    assert {name: c.type for name, c in notify.channels.items()} == {
        "duty_room": "dingtalk", "flood_duty": "dingtalk", "city_management": "wecom", "traffic_police": "feishu",
        "ops_centre": "webhook", "leadership_mail": "email", "duty_room_card": "dingtalk_card",
        "city_management_card": "wecom_card", "traffic_police_card": "feishu_card"}
    flood = notify.channels["flood_duty"]
    assert (flood.url_env, flood.secret_env) == ("SOC_NOTIFY_FLOOD_DUTY_URL", "SOC_NOTIFY_FLOOD_DUTY_SECRET")
    first = notify.subscriptions[0]
    assert (first.departments, first.min_severity, first.events, first.channels) == (
        ["flood_control"], Severity.yellow, list(EVENTS), ["flood_duty"])
    night = notify.time_intervals["night"][0].times[0]
    assert (night.start_time, night.end_time, night.minutes) == ("22:00", "07:30", (1320, 450))
    assert (notify.grouping.group_wait_s, notify.grouping.group_wait_red_s, notify.grouping.group_interval_s) == (
        30, 0, 120)


def test_no_secret_or_url_is_written_in_the_file():
    text = (CONFIG_DIR / "notify.yaml").read_text(encoding="utf-8")
    assert "http" not in text and "access_token" not in text and "SEC" not in text.replace("SECRET", "")


def test_absent_file_means_no_notifications(copy, config):
    (copy / "notify.yaml").unlink()
    assert load_notify(copy, config) is None


def test_round_trip_changes_nothing(errors_after, copy, config):
    path = copy / "notify.yaml"
    path.write_text(yaml.safe_dump(yaml.safe_load(path.read_text(encoding="utf-8")), allow_unicode=True),
                    encoding="utf-8")
    assert load_notify(copy, config) is not None


def _set(path: str, value):
    def change(data: dict):
        *parents, last = path.split(".")
        node = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return change


def _delete(path: str):
    def change(data: dict):
        *parents, last = path.split(".")
        node = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        del node[last]
    return change


@pytest.mark.parametrize("change, lines", [
    (_set("channels.flood_duty.url", "https://oapi.dingtalk.com/robot/send?access_token=x"),
     ["notify.yaml: channels.flood_duty.url: Extra inputs are not permitted"]),
    (_set("channels.flood_duty.type", "telegram"),
     ["notify.yaml: channels.flood_duty.type: Input should be 'dingtalk', 'dingtalk_card', 'wecom', 'wecom_card', "
      "'feishu', 'feishu_card', 'webhook', 'email' or 'sms'"]),
    (_set("channels.traffic_police_card.secret_env", "SOC_X"),
     ["notify.yaml: channels.traffic_police_card: a feishu_card channel is sent by the Feishu app (SOC_FEISHU_*): "
      "remove secret_env"]),
    (_set("channels.city_management_card.secret_env", "SOC_X"),
     ["notify.yaml: channels.city_management_card: a wecom_card channel is sent by the WeCom app (SOC_WECOM_*): "
      "remove secret_env"]),
    (_delete("channels.duty_room_card.card_template"),
     ["notify.yaml: channels.duty_room_card: a dingtalk_card channel needs card_template (the card template's id)"]),
    (_set("channels.duty_room_card.secret_env", "SOC_X"),
     ["notify.yaml: channels.duty_room_card: a dingtalk_card channel is sent by the DingTalk app (SOC_DINGTALK_*): "
      "remove secret_env"]),
    (_set("channels.flood_duty.card_template", "x.schema"),
     ["notify.yaml: channels.flood_duty: card_template is for dingtalk_card channels, not dingtalk"]),
    (_set("channels.flood_duty.url_env", "https://example"),
     ["notify.yaml: channels.flood_duty.url_env: String should match pattern '^[A-Z][A-Z0-9_]*$'"]),
    (_delete("channels.flood_duty.secret_env"),
     ["notify.yaml: channels.flood_duty: a dingtalk channel needs secret_env (the signing secret)"]),
    (_set("channels.city_management.secret_env", "SOC_X"),
     ["notify.yaml: channels.city_management: a wecom robot has no signing secret: remove secret_env"]),
    (_delete("channels.leadership_mail.recipients"),
     ["notify.yaml: channels.leadership_mail: an email channel needs recipients"]),
    (_set("channels.leadership_mail.sender", "leadership"),
     ["notify.yaml: channels.leadership_mail.sender: not an email address: 'leadership'"]),
    (_set("channels.flood_duty.recipients", ["a@b.example"]),
     ["notify.yaml: channels.flood_duty: sender and recipients are for email channels, not dingtalk"]),
    (_set("subscriptions.0.events", ["dispatched", "sent"]),
     ["notify.yaml: subscriptions.0.events.1: Input should be 'dispatched', 'severity_raised', 'reminded', "
      "'escalated', 'reported', 'returned', 'redispatched', 'rework' or 'closed'"]),
    (_set("subscriptions.0.min_severity", "purple"),
     ["notify.yaml: subscriptions.0.min_severity: Input should be 'red', 'orange', 'yellow' or 'blue'"]),
    (_delete("subscriptions.0.departments"),
     ["notify.yaml: subscriptions.0: a subscription needs departments or watchers: true"]),
    (_set("subscriptions.0.channels", []),
     ["notify.yaml: subscriptions.0.channels: List should have at least 1 item after validation, not 0"]),
    (_set("subscriptions.0.channels", ["flood_duty", "flood_dutty"]),
     ["notify.yaml: subscriptions.0.channels.1: undefined channel 'flood_dutty'"]),
    (_set("subscriptions.1.mute_time_intervals", ["nights"]),
     ["notify.yaml: subscriptions.1.mute_time_intervals.0: undefined time interval 'nights'"]),
    (_set("subscriptions.0.departments", ["flood_contrl"]),
     ["notify.yaml: subscriptions.0.departments.0: undefined department 'flood_contrl'"]),
    (_set("time_intervals.night", [{"times": [{"start_time": "22:00", "end_time": "7:30"}]}]),
     ["notify.yaml: time_intervals.night.0.times.0.end_time: bad time '7:30': use HH:MM (00:00 to 24:00)"]),
    (_set("time_intervals.night", [{"times": [{"start_time": "22:00", "end_time": "22:00"}]}]),
     ["notify.yaml: time_intervals.night.0.times.0: empty time range 22:00-22:00"]),
    (_set("time_intervals.weekend", [{"weekdays": ["saturday:sundae"]}]),
     ["notify.yaml: time_intervals.weekend.0.weekdays: bad weekday 'saturday:sundae': use monday..sunday or a "
      "range like monday:friday"]),
    (_set("time_intervals.weekend", [{}]),
     ["notify.yaml: time_intervals.weekend.0: an interval needs times, weekdays, days_of_month or months"]),
    (_set("grouping.group_wait_red_s", 30),
     ["notify.yaml: grouping.group_wait_red_s: Input should be less than or equal to 5"]),
])
def test_each_kind_of_error_has_its_exact_message(errors_after, change, lines):
    assert errors_after(change) == lines


def test_every_cross_reference_error_is_listed(errors_after):
    def change(data):
        data["subscriptions"][0]["channels"] = ["nope"]
        data["subscriptions"][2]["departments"] = ["traffic_polis"]
    assert errors_after(change) == [
        "notify.yaml: subscriptions.0.channels.0: undefined channel 'nope'",
        "notify.yaml: subscriptions.2.departments.0: undefined department 'traffic_polis'",
    ]


def test_broken_yaml_names_the_line(copy, config):
    (copy / "notify.yaml").write_text("channels:\n  a: [\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_notify(copy, config)
    [line] = info.value.errors
    assert line.startswith("notify.yaml: not valid YAML: line 3, column 1:")


def test_check_config_cli_reports_notify_errors(copy):
    path = copy / "notify.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("channels: [flood_duty]", "channels: [flood_dutty]"),
                    encoding="utf-8")
    done = subprocess.run([str(SOC), "check-config", str(copy)], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.splitlines() == ["notify.yaml: subscriptions.0.channels.0: undefined channel 'flood_dutty'"]
    assert load_config(copy) is not None
