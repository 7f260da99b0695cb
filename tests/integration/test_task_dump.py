"""kill -USR1 on a running worker: the log says what each task awaits (docs/operations/runbooks.md)."""
from __future__ import annotations

import json
import os
import signal

import pytest

from tests.support import poll

pytestmark = pytest.mark.integration


def test_sigusr1_logs_what_each_task_awaits_the_agents_and_the_consumer_thread_included(pipeline):
    log = pipeline.worker.process.log_path

    def dumps() -> list[dict]:
        lines = log.read_text(errors="replace").splitlines()
        return [record for line in lines if line.startswith("{") and '"logger":"soc.tasks"' in line
                for record in [json.loads(line)]]

    before = len(dumps())
    os.kill(pipeline.worker.process.popen.pid, signal.SIGUSR1)
    [record] = poll(lambda: dumps()[before:], 15, "the task dump in the worker's log")
    chains = [" <- ".join(chain) for part in ("tasks", "consumer_thread", "own") for chain in record[part]]
    assert record["consumer_thread"], "the consumer thread's tasks"
    assert any("decide_tickets" in chain for chain in chains)  # the ticket step, through Faust's wrapper
    assert pipeline.worker.process.popen.poll() is None  # the worker goes on
