"""Readiness that does not empty the Service, on the real Tansu broker and Redis.

A second worker joins a running one. The group rebalances (about 30 s on Tansu) and both recover
their tables; throughout, the first worker's /readyz stays 200 and its API answers, while
/readyz/processing and the soc_worker_assigned / soc_tables_recovered gauges report the rebalance.
"""
from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request

import pytest

from streams.ops.devstack import http_ok
from tests.support import Worker, running_pipeline

pytestmark = pytest.mark.integration

JOIN_TIMEOUT_S = 180


def status(url: str, headers: dict | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=3) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def gauges(worker: Worker) -> dict[str, float]:
    with urllib.request.urlopen(worker.url + "/metrics", timeout=3) as response:
        text = response.read().decode()
    return {name: float(value) for name, value in
            re.findall(r"^(soc_worker_ready|soc_worker_assigned|soc_tables_recovered) (\S+)$", text, re.M)}


def test_readyz_stays_200_on_a_worker_while_a_second_one_joins(tmp_path):
    with running_pipeline(tmp_path) as p:
        first = p.worker
        assert gauges(first) == {"soc_worker_ready": 1.0, "soc_worker_assigned": 1.0, "soc_tables_recovered": 1.0}
        ops = {"Authorization": f"Bearer {p.tokens['ops_centre']}"}

        process, port = p.stack.start_worker(name="worker-2")
        second = Worker(process, port)
        readyz, processing, api_during_rebalance, assigned_gauge = [], [], [], []
        second_serving_at = second_processing_at = None
        t0 = time.monotonic()
        while time.monotonic() - t0 < JOIN_TIMEOUT_S:
            if process.popen.poll() is not None:
                pytest.fail(f"worker-2 exited with {process.popen.returncode}:\n{second.log_tail()}")
            readyz.append(status(first.url + "/readyz"))
            processing.append(status(first.url + "/readyz/processing"))
            assigned_gauge.append(gauges(first)["soc_worker_assigned"])
            if processing[-1] != 200:
                # Rebalancing: the HTTP side still serves from Redis.
                api_during_rebalance.append(status(first.url + "/api/tickets?limit=1", ops))
            if second_serving_at is None and http_ok(second.url + "/readyz"):
                second_serving_at = time.monotonic()
            if second_processing_at is None and http_ok(second.url + "/readyz/processing"):
                second_processing_at = time.monotonic()
            # Done once both hold partitions again, and a little after (a late second rebalance).
            if second_processing_at and processing[-1] == 200 and time.monotonic() - second_processing_at > 5:
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"worker-2 not processing after {JOIN_TIMEOUT_S}s:\n{second.log_tail()}")

        assert set(readyz) == {200}, f"/readyz on the first worker answered {sorted(set(readyz))} during the join"
        # The join did rebalance the first worker: otherwise this test proved nothing.
        assert 503 in processing, "never saw /readyz/processing report the rebalance"
        assert 0.0 in assigned_gauge, "soc_worker_assigned never went to 0 during the rebalance"
        assert api_during_rebalance and set(api_during_rebalance) == {200}, api_during_rebalance
        # The newcomer serves HTTP before it holds partitions.
        assert second_serving_at is not None and second_serving_at <= second_processing_at
        for worker in (first, second):
            body = json.loads(urllib.request.urlopen(worker.url + "/readyz/processing", timeout=3).read())
            assert body["assigned"] and body["tables_recovered"], body
