"""The sign-in throttle (handlers/sign_in.py): a progressive delay per account and address, and an
account-wide ceiling that never slows an address the owner signed in from. Time is a number passed in."""
from __future__ import annotations

import shutil

import pytest
import yaml

from handlers.sign_in import Failures, Throttle, delay_s, wait
from schemas.config import ConfigError, SignIn, load_config
from tests.unit.conftest import CONFIG_DIR

RULES = SignIn(free_failures=5, first_delay="30s", max_delay="15m", failure_memory="1h", account_ceiling=100)
NOW = 1_800_000_000.0
NONE = Failures()


def test_the_free_failures_cost_nothing_then_each_further_one_doubles_the_wait_up_to_the_cap():
    assert [delay_s(RULES, n, RULES.free_failures) for n in range(12)] == [
        0, 0, 0, 0, 0, 30, 60, 120, 240, 480, 900, 900]
    assert delay_s(RULES, 10_000, RULES.free_failures) == 900  # no overflow, however many


def test_a_guessers_address_waits_from_its_last_failure_and_is_checked_again_once_the_wait_is_over():
    guesser = Failures(count=6, last=NOW)  # the sixth failure: 60 s
    waited = wait(RULES, guesser, guesser, False, NOW + 1)
    assert (waited.seconds, waited.reason) == (59, Throttle.account_address)
    assert wait(RULES, guesser, guesser, False, NOW + 59.5).seconds == pytest.approx(0.5)
    assert wait(RULES, guesser, guesser, False, NOW + 60).seconds == 0


def test_the_owner_from_another_address_is_not_slowed_by_the_guessers_failures():
    # The guesser failed 9 times on the account: their address waits, the owner's pair has no failures.
    account = Failures(count=9, last=NOW)
    assert wait(RULES, Failures(count=9, last=NOW), account, False, NOW + 1).seconds > 0
    assert wait(RULES, NONE, account, True, NOW + 1).seconds == 0
    assert wait(RULES, NONE, account, False, NOW + 1).seconds == 0  # below the ceiling, any address


def test_past_the_accounts_ceiling_unknown_addresses_are_slowed_and_the_owners_known_one_is_not():
    account = Failures(count=RULES.account_ceiling + 2, last=NOW)  # many addresses, a few failures each
    unknown = wait(RULES, NONE, account, False, NOW + 10)
    assert (unknown.seconds, unknown.reason) == (110, Throttle.account)  # 120 s after the third past it
    assert wait(RULES, NONE, account, True, NOW + 10).seconds == 0


def test_the_owners_own_failures_slow_even_their_known_address():
    mine = Failures(count=5, last=NOW)
    assert wait(RULES, mine, mine, True, NOW + 10).reason is Throttle.account_address


@pytest.mark.parametrize("change, line", [
    ({"max_failures": 5, "lockout": "15m"},
     "district.yaml: sign_in: max_failures and lockout are gone: accounts are no longer locked; failures slow the "
     "address that makes them (free_failures, first_delay, max_delay)"),
    ({"max_delay": "2h", "failure_memory": "1h"},
     "district.yaml: sign_in: failure_memory (1h) must be at least max_delay (2h): else a guesser who waits out "
     "the delay starts afresh"),
    ({"first_delay": "20m", "max_delay": "15m"},
     "district.yaml: sign_in: first_delay (20m) must be at most max_delay (15m)"),
    ({"free_failures": 0}, "district.yaml: sign_in.free_failures: Input should be greater than or equal to 1"),
    ({"first_delay": "soon"}, "district.yaml: sign_in.first_delay: bad duration 'soon': use a number with s, m or "
                              "h, e.g. 90m"),
])
def test_the_sign_in_settings_are_checked(tmp_path, change, line):
    config_dir = tmp_path / "config"
    shutil.copytree(CONFIG_DIR, config_dir)
    path = config_dir / "district.yaml"
    district = yaml.safe_load(path.read_text(encoding="utf-8"))
    district["sign_in"].update(change)
    path.write_text(yaml.safe_dump(district, allow_unicode=True, sort_keys=False), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_config(config_dir)
    assert info.value.errors == [line]
