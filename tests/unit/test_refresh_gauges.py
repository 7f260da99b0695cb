"""The per-department gauges: a department's on-time ratio leaves /metrics once it
has no figure, instead of showing its last value for ever (the dashboard's stale ratios)."""
from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import orjson
from prometheus_client import CollectorRegistry

from streams.metrics import Metrics
from streams.topology.sweeps import refresh_gauges
from tests.unit.conftest import NOW


def fact(department: str, status: str, dispatched_ago: timedelta, resolved: bool) -> bytes:
    dispatched = NOW - dispatched_ago
    due = dispatched + timedelta(hours=4)
    return orjson.dumps([department, "blue", status, dispatched.timestamp(), due.timestamp(),
                         (dispatched + timedelta(hours=1)).timestamp() if resolved else None])


class Store:
    def __init__(self):
        self.facts: list[bytes] = []

    async def gauge_facts(self) -> list[bytes]:
        return list(self.facts)


def ratios(registry: CollectorRegistry) -> dict[str, float]:
    return {s.labels["department"]: s.value for m in registry.collect() if m.name == "soc_department_on_time_ratio"
            for s in m.samples}


async def test_a_department_without_a_figure_loses_its_on_time_ratio(config):
    registry = CollectorRegistry()
    store = Store()
    pipeline = SimpleNamespace(clock=lambda: NOW, config=config, store=store,
                               books=SimpleNamespace(response=SimpleNamespace(by_key=dict)),
                               metrics=Metrics(registry, tuple(config.district.departments)))
    store.facts = [fact("flood_control", "closed", timedelta(days=2), resolved=True),
                   fact("city_management", "resolved", timedelta(days=1), resolved=True)]
    await refresh_gauges(pipeline)
    assert ratios(registry) == {"flood_control": 1.0, "city_management": 1.0}

    # flood_control's ticket left the 30-day window; city_management's only ticket now is not due yet.
    store.facts = [fact("flood_control", "closed", timedelta(days=31), resolved=True),
                   fact("city_management", "dispatched", timedelta(minutes=10), resolved=False)]
    await refresh_gauges(pipeline)
    assert ratios(registry) == {}
