"""plans.yaml loads with the district's plans, and every kind of bad plan is refused with the line an
operator reads (by load_config and by `soc check-config`)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from schemas.config import ConfigError, load_config
from schemas.enums import Category, Severity
from schemas.enums import Hazard

SOC = Path(sys.executable).parent / "soc"


def errors_after(copy: Path, change) -> list[str]:
    path = copy / "plans.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(copy)
    return info.value.errors


def test_the_districts_plans_load(config):
    plans = {p.id: p for p in config.plans.plans}
    assert sorted(plans) == ["flood_i", "flood_ii", "major_accident", "typhoon_ii"]
    flood = plans["flood_ii"]
    assert (flood.hazard, flood.trigger.by, flood.trigger.level) == (Hazard.flood, "level", "II")
    assert [t.title for t in flood.tasks][:3] == ["低洼点位值守", "下穿通道封闭", "抽排"]
    assert len({t.department for t in flood.tasks}) >= 3
    assert "转移安置" in [t.title for t in plans["flood_i"].tasks]
    assert [t.title for t in plans["typhoon_ii"].tasks] == ["工地停工检查", "高空构件加固", "避难场所开放"]
    accident = plans["major_accident"].trigger
    assert (accident.by, accident.category, accident.min_severity) == ("ticket", Category.traffic_accident,
                                                                       Severity.red)


def test_no_plans_file_means_no_plans(copy):
    (copy / "plans.yaml").unlink()
    assert load_config(copy).plans.plans == []


def test_undefined_department(copy):
    def change(data):
        data["plans"][0]["tasks"][1]["department"] = "fire_brigade"
    assert errors_after(copy, change) == ["plans.yaml: plans.0.tasks.1.department: undefined department 'fire_brigade'"]


def test_undefined_correlation_rule(copy):
    def change(data):
        data["plans"][3]["trigger"] = {"by": "correlation", "rule": "no_such_rule"}
    assert errors_after(copy, change) == ["plans.yaml: plans.3.trigger.rule: undefined correlation rule 'no_such_rule'"]


def test_accept_later_than_due(copy):
    def change(data):
        data["plans"][0]["tasks"][0]["accept"] = "2h"
    assert errors_after(copy, change) == ["plans.yaml: plans.0.tasks.0.accept: 2h is later than due 30m"]


@pytest.mark.parametrize("change, line", [
    (lambda d: d["plans"][0]["trigger"].update(level="V"),
     "plans.yaml: plans.0.trigger.level.level: Input should be 'I', 'II', 'III' or 'IV'"),
    (lambda d: d["plans"][0].update(trigger={"by": "weather"}),
     "plans.yaml: plans.0.trigger: Input tag 'weather' found using 'by' does not match any of the expected tags: "
     "'level', 'ticket', 'correlation'"),
    (lambda d: d["plans"][1].update(id="flood_ii"), "plans.yaml: plans: plan ids must be unique: flood_ii"),
    (lambda d: [t.update(role="support") for t in d["plans"][2]["tasks"]],
     "plans.yaml: plans.2: a plan needs a task with role lead"),
    (lambda d: d["plans"][0]["tasks"][0].update(due="half an hour"),
     "plans.yaml: plans.0.tasks.0.due: bad duration 'half an hour': use a number with s, m or h, e.g. 90m"),
    (lambda d: d["plans"][0]["tasks"][0].update(resources=["helicopter"]),
     "plans.yaml: plans.0.tasks.0.resources.0: Input should be 'pump_truck', 'rescue_crew', 'sandbag_depot', "
     "'shelter', 'barrier', 'tow_truck', 'ambulance', 'generator' or 'patrol_team'"),
    (lambda d: d["plans"][0].update(colour="red"), "plans.yaml: plans.0.colour: Extra inputs are not permitted"),
])
def test_bad_plan(copy, change, line):
    assert errors_after(copy, change) == [line]


def test_check_config_reports_a_bad_plan(copy):
    def change(data):
        data["plans"][2]["tasks"][0]["department"] = "nobody"
    errors_after(copy, change)
    done = subprocess.run([str(SOC), "check-config", str(copy)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip() == "plans.yaml: plans.2.tasks.0.department: undefined department 'nobody'"
