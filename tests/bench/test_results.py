"""The result files kept in bench/results/ stay readable: docs/performance.md quotes them, and a new run is
compared with them. No broker: only the report code over the stored JSON."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.goals import recorded_targets, targets
from bench.report import table
from streams.settings import REPO_ROOT

RESULTS = sorted((REPO_ROOT / "bench" / "results").glob("*.json"))


def test_there_are_results() -> None:
    assert RESULTS


@pytest.mark.parametrize("path", RESULTS, ids=[p.stem for p in RESULTS])
def test_a_stored_result_renders_with_its_targets(path: Path) -> None:
    result = json.loads(path.read_text(encoding="utf-8"))
    recorded = recorded_targets(result)
    assert all({"name", "measured", "goal", "met"} <= set(t) for t in recorded), recorded
    rendered = table(result)
    for target in recorded:
        assert target["name"] in rendered
    # The targets of today's code can be computed from any stored run's phases.
    for target in targets(result["phases"]):
        assert target["met"] in (True, False) and (target["measured"] is not None or target["reason"])
