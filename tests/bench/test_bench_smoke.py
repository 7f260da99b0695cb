"""Keeps the benchmark harness from rotting: a tiny run of its phases, checked for shape only.

The benchmark is not a test: no timing figure is asserted here, only that each phase ran, moved
events and wrote the result file with the machine, versions, settings and the targets list. The
quixstreams baseline is the optional `bench` extra: without it the run records a skip.
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
    argv = [sys.executable, "-m", "bench", "--quick", "--phases", "baseline,pipeline,latency",
            "--events", "300", "--out", str(tmp_path), "--log-dir", str(tmp_path / "logs")]
    proc = subprocess.Popen(argv, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=480)
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
    # A phase that failed says why, in the result and in the output, rather than as a missing figure.
    assert not [name for name, phase in phases.items() if phase.get("error")], output[-4000:]
    baseline = phases["baseline"]
    assert not [name for name, part in baseline.items() if isinstance(part, dict) and part.get("error")], baseline
    assert baseline["events"] == 300 and baseline["events_per_s"] > 0, baseline
    batch_echo = baseline["faust_batch_echo"]
    assert batch_echo["events"] == 300 and batch_echo["events_per_s"] > 0 and batch_echo["mode"] == "batch", batch_echo
    quix = baseline["quixstreams_echo"]
    if quix.get("skipped"):  # the optional `bench` extra is not installed
        assert "quixstreams" in quix["reason"], quix
    else:
        assert quix["events"] == 300 and quix["events_per_s"] > 0, quix
    hop = phases["latency"]["raw_single_hop"]
    assert set(hop["runs"]) == {"50", "200"}, hop
    for run in hop["runs"].values():
        assert run["n"] == run["events"] and run["p50_ms"] is not None and run["p99_ms"] is not None, run

    names = [t["name"] for t in result["targets"]]
    for name in ("pipeline_vs_faust_batch_echo", "p99_ratio_1000", "scale_2_workers", "soak_rss_growth"):
        assert name in names, names
    for target in result["targets"]:
        assert {"name", "measured", "goal", "met"} <= set(target), target
        if target["measured"] is None:
            assert target["met"] is False and target["reason"], target
    by_name = {t["name"]: t for t in result["targets"]}
    # The quick run has no 1,000 ev/s rate, no scale and no soak: recorded as not measured, with why.
    for name in ("p99_ratio_1000", "scale_2_workers", "soak_rss_growth"):
        assert by_name[name]["measured"] is None, by_name[name]
    pipeline = phases["pipeline"]
    assert pipeline["drained"] and pipeline["events_counted"] == 300 and pipeline["events_per_s"] > 0
    assert pipeline["ticket_writes"] > 0 and pipeline["faust_settings"]["stream_buffer_maxsize"]
    runs = phases["latency"]["runs"]
    assert set(runs) == {"50", "200"}
    for run in runs.values():
        assert run["drained"] and run["n"] > 0 and run["p99_ms"] is not None
    assert by_name["pipeline_vs_faust_batch_echo"]["measured"] > 0
    # The handlers alone on the same backlog, against the raw loop of the same run.
    handlers = phases["baseline"]["handlers_only"]
    assert handlers["events"] == 300 and handlers["events_per_s"] > 0, handlers
    assert by_name["handlers_vs_raw"]["measured"] == round(handlers["events_per_s"] / phases["baseline"]["events_per_s"], 3)
    assert "phase" in output and "results:" in output  # the table was printed
    assert "pipeline_vs_faust_batch_echo" in output and "soak_rss_growth" in output  # with the targets
