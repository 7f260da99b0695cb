"""Keeps the benchmark harness from rotting: a tiny run of its phases, checked for shape only.

The benchmark is not a test: no timing figure is asserted here, only that each phase ran, moved
events and wrote the result file with the machine, versions and settings.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from streams.settings import REPO_ROOT

pytestmark = pytest.mark.integration


def test_quick_bench_writes_results(tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "bench.harness", "--quick", "--phases", "baseline,pipeline,latency",
            "--events", "300", "--out", str(tmp_path), "--log-dir", str(tmp_path / "logs")]
    proc = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        # SIGTERM lets the harness stop its brokers and workers before it exits.
        os.killpg(proc.pid, signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
        pytest.fail(f"bench --quick did not finish:\n{output[-4000:]}")
    assert proc.returncode == 0, output[-4000:]

    files = list(tmp_path.glob("*.json"))
    assert len(files) == 1, output[-2000:]
    result = json.loads(files[0].read_text())
    for key in ("machine", "versions", "settings", "workload", "phases", "targets", "load_at_start", "load_at_end"):
        assert key in result, key
    assert result["machine"]["nproc"] >= 1
    assert result["versions"]["faust-streaming"] and result["versions"]["aiokafka"]
    assert result["settings"]["quick"] is True

    phases = result["phases"]
    assert phases["baseline"]["events"] == 300 and phases["baseline"]["events_per_s"] > 0
    pipeline = phases["pipeline"]
    assert pipeline["drained"] and pipeline["events_counted"] == 300 and pipeline["events_per_s"] > 0
    assert pipeline["ticket_writes"] > 0 and pipeline["faust_settings"]["stream_buffer_maxsize"]
    runs = phases["latency"]["runs"]
    assert set(runs) == {"50", "200"}
    for run in runs.values():
        assert run["drained"] and run["n"] > 0 and run["p99_ms"] is not None
    assert "pipeline_vs_baseline" in result["targets"]
    assert "phase" in output and "results:" in output  # the table was printed
