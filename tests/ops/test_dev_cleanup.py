"""`soc dev` leaves nothing in a shared Redis: on exit it removes its own prefix's keys, and only those."""
from __future__ import annotations


import pytest
import redis

from streams.ops.cli import forget_keys
from tests.support import marker

URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def client():
    c = redis.Redis.from_url(URL)
    yield c
    c.close()


def test_the_demos_keys_go_and_others_stay(client):
    prefix, other = f"soc-dev-test-{marker()}", f"soc-keep-{marker()}"
    for n in range(2500):
        client.set(f"{prefix}:ticket:{n}", "13800138000")
    client.set(f"{other}:ticket:1", "x")
    try:
        assert forget_keys(URL, prefix) == 2500
        assert list(client.scan_iter(f"{prefix}:*")) == [] and client.get(f"{other}:ticket:1") == b"x"
    finally:
        client.delete(f"{other}:ticket:1")
