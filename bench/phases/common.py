"""What the phases share: a phase's figures or the error that stopped it, the worker's fetch wait, the
warm-up before the latency runs."""
from __future__ import annotations

from collections.abc import Callable

from bench.options import Options
from streams.settings import Settings


def guarded(run_it: Callable[[], dict]) -> dict:
    """A phase's (or a baseline's) figures, or the error that stopped it: one broken phase does not end the run."""
    try:
        return run_it()
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[:3000]}


def worker_fetch_wait_ms() -> int:
    """The worker's consumer fetch wait (SOC_FETCH_MAX_WAIT_MS)."""
    return Settings().fetch_max_wait_ms


def warmup(opts: Options) -> tuple[int, float]:
    """(rate, seconds) of the warm-up that comes before the measured latency runs."""
    return (50, 2.0) if opts.quick else (200, 5.0)
