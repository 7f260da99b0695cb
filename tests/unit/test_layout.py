"""The topology is read a part at a time: every module under streams/topology/ stays under 300 lines
(docs/layout.md)."""
from __future__ import annotations

from pathlib import Path

TOPOLOGY = Path(__file__).resolve().parents[2] / "streams" / "topology"
MOST_LINES = 300


def test_every_module_of_the_topology_is_under_300_lines():
    modules = sorted(TOPOLOGY.rglob("*.py"))
    assert len(modules) > 5  # the directory itself, not an empty glob
    too_long = {str(m.relative_to(TOPOLOGY)): n for m in modules
                if (n := len(m.read_text(encoding="utf-8").splitlines())) >= MOST_LINES}
    assert too_long == {}
