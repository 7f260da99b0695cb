"""What a benchmark run is asked to do (`Options`), and the command line that says it."""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench" / "results"
PHASES = ("baseline", "pipeline", "latency", "scale", "soak", "hot_keys")


@dataclass
class Options:
    phases: tuple[str, ...]
    events: int = 100_000
    rates: tuple[int, ...] = (200, 1000, 5000)
    latency_seconds: float = 20.0
    soak_seconds: float = 600.0
    soak_rate: int = 1000
    soak_close_rate: float = 2.0
    workers: int = 2
    partitions: int = 8
    scenario: str = "rainstorm"
    seed: int = 7
    quick: bool = False
    out: Path = RESULTS_DIR
    label: str = ""
    worker_env: dict[str, str] = field(default_factory=dict)
    ready_timeout: float = 180.0
    drain_timeout: float = 600.0
    log_dir: Path | None = None
    profile: bool = False


def env_pairs(values: list[str]) -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--worker-env wants KEY=VALUE, got {item!r}")
        out[key] = value
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--phases", default=",".join(PHASES), help=f"comma-separated subset of {','.join(PHASES)}")
    parser.add_argument("--events", type=int, default=None, help="backlog size for baseline, pipeline and scale")
    parser.add_argument("--rates", default=None, help="offered loads for the latency phase (events/s)")
    parser.add_argument("--latency-seconds", type=float, default=None, help="seconds per offered load")
    parser.add_argument("--soak-seconds", type=float, default=None)
    parser.add_argument("--soak-rate", type=int, default=1000, help="events/s offered during the soak")
    parser.add_argument("--soak-close-rate", type=float, default=2.0,
                        help="tickets/s the soak's clerk starts closing through the HTTP API (0: none)")
    parser.add_argument("--workers", type=int, default=2, help="workers in the scale phase")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--scenario", default="rainstorm", choices=["normal", "rainstorm", "rush_hour"])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="tiny loads, a few seconds each, no soak (smoke test)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help="directory for the JSON result")
    parser.add_argument("--label", default="", help="suffix for the result file name")
    parser.add_argument("--worker-env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment for the workers (repeatable)")
    parser.add_argument("--log-dir", type=Path, default=None, help="keep broker/worker logs here")
    parser.add_argument("--profile", action="store_true",
                        help="py-spy each worker during backlog drains (collapsed stacks next to the logs)")


def options_from(args: argparse.Namespace) -> Options:
    phases = tuple(p.strip() for p in args.phases.split(",") if p.strip())
    if args.quick and args.phases == ",".join(PHASES):
        phases = ("baseline", "pipeline", "latency")
    quick = args.quick
    return Options(
        phases=phases,
        events=args.events or (400 if quick else 100_000),
        rates=tuple(int(r) for r in args.rates.split(",")) if args.rates else ((50, 200) if quick else (200, 1000, 5000)),
        latency_seconds=args.latency_seconds or (2.0 if quick else 20.0),
        soak_seconds=args.soak_seconds or (20.0 if quick else 600.0),
        soak_rate=args.soak_rate, soak_close_rate=args.soak_close_rate, workers=args.workers,
        partitions=args.partitions, scenario=args.scenario,
        seed=args.seed, quick=quick, out=args.out, label=args.label, worker_env=env_pairs(args.worker_env),
        log_dir=args.log_dir, profile=args.profile,
    )
