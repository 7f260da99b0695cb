"""How long a sign-in must wait, from the failures before it: OWASP's progressive delay per account and
address, never a lockout.

Failures from address A against account X slow A's tries on X only. The owner signing in from elsewhere
is not slowed by them; from an address known for the account (a recent successful sign-in there) the
owner is not slowed by anybody else's failures either, not even past the account's ceiling.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from schemas.config import SignIn as Rules


class Throttle(str, Enum):
    """Why a sign-in or credential was refused before it was checked (soc_sign_in_throttled_total{reason})."""

    address = "address"                  # the address spent its budget (sign-ins, refused credentials)
    account_address = "account_address"  # this address failed on this account too often, too recently
    account = "account"                  # the account's failures from everywhere passed its ceiling


@dataclass(frozen=True)
class Failures:
    """Failed sign-ins still remembered, and when the latest was (seconds since the epoch)."""

    count: int = 0
    last: float = 0.0


def delay_s(rules: Rules, failures: int, free: int) -> float:
    """The wait after `failures` failures of which the first `free` cost nothing: first_delay, then
    doubling with each further failure, up to max_delay."""
    if failures < free:
        return 0.0
    doublings = min(failures - free, 32)  # 2**32 times any delay is past any max_delay
    return min(rules.max_delay_s, rules.first_delay_s * 2 ** doublings)


@dataclass(frozen=True)
class Wait:
    seconds: float
    reason: Throttle | None = None


def wait(rules: Rules, pair: Failures, account: Failures, known_address: bool, now: float) -> Wait:
    """How long this address must still wait before its sign-in to this account is checked (0: check it).

    pair: the failures of this address on this account; account: those of every address on it;
    known_address: this address signed in to this account successfully within known_address_for."""
    pair_wait = pair.last + delay_s(rules, pair.count, rules.free_failures) - now
    if pair_wait > 0:
        return Wait(pair_wait, Throttle.account_address)
    if not known_address:
        account_wait = account.last + delay_s(rules, account.count, rules.account_ceiling) - now
        if account_wait > 0:
            return Wait(account_wait, Throttle.account)
    return Wait(0.0)
