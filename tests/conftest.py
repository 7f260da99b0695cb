"""Fixtures shared by the integration, e2e and reliability tiers: one real stack for the session
(a consumer group takes seconds to form on Tansu, so the worker starts once)."""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.payloads import Builder
from tests.support import CONFIG, Pipeline, marker, running_pipeline


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory) -> Iterator[Pipeline]:
    log_dir = Path(os.environ.get("SOC_TEST_LOG_DIR") or tmp_path_factory.mktemp("stack"))
    with running_pipeline(log_dir) as running:
        yield running


@pytest.fixture
def unique() -> str:
    """A marker that keeps one test's ids and dedup keys apart from every other test's (tests.support.marker)."""
    return marker()


@pytest.fixture
def build(unique) -> Builder:
    """Payloads with this test's own ids, places and day."""
    return Builder(CONFIG, unique)
