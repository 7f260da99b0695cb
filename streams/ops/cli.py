"""`soc` command: dev, worker, users, simulate, send, check-config, topics, rebuild, repartition."""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shlex
import signal
import sys
import time
from datetime import datetime, timedelta
from collections.abc import Iterable, Mapping
from pathlib import Path

from redis.exceptions import RedisError

from schemas.accounts import User, UserRole
from schemas.config import Config, ConfigError, load_config
from schemas.enums import OPS_CENTRE
from streams.clock import utc_now
from streams.ops import users


def report(problems: list[str]) -> int:
    """Each config problem on its own line on stderr (what scripts and people read): exit code 1."""
    for line in problems:
        print(line, file=sys.stderr)
    return 1


def cmd_check_config(args: argparse.Namespace) -> int:
    from schemas.geo import load_map
    from schemas.notify import load_notify

    try:
        config = load_config(args.config_dir)
        load_notify(args.config_dir, config)
        load_map(args.config_dir, config)
    except ConfigError as exc:
        return report(exc.errors)
    gaps = duty_problems(config, args.now or utc_now())
    if gaps:
        return report(gaps)
    # notify.yaml (optional) is checked silently on success: the summary line stays the one scripts read.
    print(f"{args.config_dir}: ok ({len(config.district.communities)} communities, "
          f"{len(config.district.departments)} departments)")
    return 0


DUTY_HORIZON = timedelta(days=30)


def duty_problems(config: Config, now: datetime) -> list[str]:
    """One line per stretch of the next 30 days without a leader or an officer on duty."""
    district = config.district
    duty = district.duty
    if not duty.rotations and not duty.overrides:
        return ["district.yaml: duty: no duty roster"]
    from handlers.duty import coverage_gaps

    return [f"district.yaml: duty: no {role} from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} ({district.timezone})"
            for role, start, end in coverage_gaps(district, now, now + DUTY_HORIZON)]


def aware_time(text: str) -> datetime:
    """argparse type: an RFC 3339 time with its offset."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a time: {text!r}") from None
    if when.utcoffset() is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a UTC offset, e.g. 2026-12-01T08:30+08:00")
    return when


# sysexits' EX_CONFIG: a worker nobody can act for would answer 401 to everyone.
NO_CREDENTIALS_EXIT_CODE = 78
# Who can act for the centre from the account store: a duty officer, or an admin who can add one.
CENTRE_PEOPLE = frozenset({UserRole.duty_officer, UserRole.admin})


def missing_credentials(config: Config, environ: Mapping[str, str], users: Iterable[User], prefix: str) -> str | None:
    """Why the worker must not start, or None: it may when the centre's service token is set, or when the
    account store under `prefix` holds an active duty officer or admin."""
    token_env = config.district.departments[OPS_CENTRE].token_env
    if environ.get(token_env, "").strip() or any(u.role in CENTRE_PEOPLE and not u.disabled for u in users):
        return None
    return (f"运行中心无人可用：没有在用的值班员或管理员账号，也没有设置 {token_env} "
            f"(no person and no service credential can act for {OPS_CENTRE}: no active duty officer or admin "
            f"in Redis under {prefix}, and {token_env} is not set). Add a duty officer with "
            f"`soc users add NAME --name 姓名 --department {OPS_CENTRE} --role duty_officer` "
            f"(same SOC_REDIS_URL and SOC_REDIS_PREFIX), or set {token_env}.")


def credentials_exit_code(settings) -> int:
    """0 when someone can act for the centre; else the reason on stderr and 78 (1 when Redis, asked
    because the centre's token is not set, does not answer)."""
    config = load_config(settings.config_dir)
    why = missing_credentials(config, os.environ, (), settings.redis_prefix)
    if why:  # the centre's token is not set: the account store may hold someone
        try:
            why = missing_credentials(config, os.environ, users.all_users(settings, config), settings.redis_prefix)
        except (RedisError, OSError) as exc:
            print(f"cannot read the accounts in {settings.redis_url.rsplit('@', 1)[-1]} to see who can act for "
                  f"{OPS_CENTRE}: {exc}", file=sys.stderr)
            return 1
    if why:
        print(why, file=sys.stderr)
        return NO_CREDENTIALS_EXIT_CODE
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from streams.settings import Settings

    code = credentials_exit_code(Settings())
    if code:
        return code
    # The worker owns its start: its topics exist, as configured, before Faust starts.
    from streams.ops.bootstrap import ensure_topics_or_exit_code

    code = ensure_topics_or_exit_code()
    if code:
        return code
    settings = Settings()
    sys.argv = ["soc", "worker", "-l", settings.log_level, "--web-port", str(settings.web_port),
                "--web-host", settings.web_host]
    from streams.worker import assemble

    try:
        pipeline = assemble(settings)
    except ConfigError as exc:  # e.g. map.geojson, read when the views are registered
        return report(exc.errors)
    pipeline.app.main()
    return 0


def read_payloads(source: str) -> list:
    text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    stripped = text.strip()
    if not stripped:
        return []
    try:
        data = json.loads(stripped)
        return data if isinstance(data, list) else [data]
    except json.JSONDecodeError:
        return [json.loads(line) for line in stripped.splitlines() if line.strip()]


def cmd_send(args: argparse.Namespace) -> int:
    from kafka import KafkaProducer

    from streams import topics
    from streams.settings import Settings

    topic = topics.RAW_TOPICS.get(args.source) or (topics.SITES if args.source == "sites" else None)
    if topic is None:
        print(f"unknown source {args.source!r}: use one of {', '.join([*topics.RAW_TOPICS, 'sites'])}", file=sys.stderr)
        return 2
    payloads = read_payloads(args.file)
    settings = Settings()
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=5,
                             **settings.kafka_client_kwargs())
    for payload in payloads:
        key = payload.get("site_id") if isinstance(payload, dict) and topic == topics.SITES else None
        producer.send(topic, key=key.encode() if key else None, value=json.dumps(payload, ensure_ascii=False).encode())
    producer.flush()
    producer.close()
    print(f"sent {len(payloads)} to {topic}")
    return 0


def cmd_topics(args: argparse.Namespace) -> int:
    """For operators: what `soc worker` does first, alone."""
    from streams.ops.bootstrap import ensure_topics_or_exit_code

    code = ensure_topics_or_exit_code()
    if code == 0:
        print("topics ready")
    return code


def cmd_simulate(args: argparse.Namespace) -> int:
    from streams.ops.sim_runner import BadVolume, BrokerUnreachable, run
    from streams.settings import Settings

    try:
        run(Settings(), rate=args.rate, duration=args.duration, scenario=args.scenario, seed=args.seed,
            intensity=args.intensity)
    except ConfigError as exc:
        return report(exc.errors)
    except BadVolume as exc:
        print(exc, file=sys.stderr)
        return 2
    except BrokerUnreachable as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


def add_volume_arguments(p: argparse.ArgumentParser) -> None:
    volume = p.add_mutually_exclusive_group()
    volume.add_argument("--intensity", type=float, default=1.0,
                        help="multiplies a sub-district's report rates (default 1; e.g. 10 for a load test)")
    volume.add_argument("--rate", type=float, default=None,
                        help="instead: the four sources mixed at this many events per second (throughput tests)")


def cmd_rebuild(args: argparse.Namespace) -> int:
    from streams.ops.rebuild import run
    from streams.settings import Settings

    return run(Settings())


def cmd_repartition(args: argparse.Namespace) -> int:
    from streams.ops.repartition import run

    return run(args.partitions, args.to_app_id)


def cmd_users(args: argparse.Namespace) -> int:
    return users.run(args)


def demo_tokens(departments: list[str]) -> dict[str, str]:
    return {d: f"demo-{d.replace('_', '-')}-{secrets.token_hex(4)}" for d in departments}


def cmd_dev(args: argparse.Namespace) -> int:
    if args.demo_receiver:
        import asyncio

        from streams.ops.demo_receiver import serve

        try:
            asyncio.run(serve("127.0.0.1", args.demo_receiver_port))
        except KeyboardInterrupt:
            pass
        return 0
    from streams.ops.devstack import Stack, http_ok, soc_command, spawn, wait_for

    config = load_config(args.config_dir)

    def stop_on_term(signum, frame):
        raise KeyboardInterrupt  # SIGTERM tears the stack down like Ctrl-C does

    signal.signal(signal.SIGTERM, stop_on_term)
    tokens = {config.district.departments[d].token_env: t for d, t in demo_tokens(list(config.district.departments)).items()}
    intake = config.district.intake
    open311_keys = {name: f"demo-open311-{name.replace('_', '-')}-{secrets.token_hex(4)}" for name in intake.open311}
    feed_tokens = {name: f"demo-cap-{name.replace('_', '-')}-{secrets.token_hex(4)}" for name in intake.cap_feeds}
    wall_token = f"demo-wall-{secrets.token_hex(4)}" if config.district.wall_token_env else None
    secrets_env = {**{intake.open311[n].key_env: k for n, k in open311_keys.items()},
                   **{intake.cap_feeds[n].token_env: t for n, t in feed_tokens.items()},
                   **({config.district.wall_token_env: wall_token} if wall_token else {})}
    env_file = None
    stack = Stack.start(partitions=args.partitions, config_dir=Path(args.config_dir).resolve(),
                        redis_prefix=f"soc-dev-{os.getpid()}", extra_env={**tokens, **secrets_env})
    try:
        worker, port = stack.start_worker(web_port=args.port)
        passwords = users.add_demo_users(stack.redis_url, stack.redis_prefix, config)
        print(f"broker   {stack.bootstrap} (Tansu, in memory)\nredis    {stack.redis_url} (keys {stack.redis_prefix}:*)")
        print(f"logs     {stack.log_dir}")
        print("waiting for the worker to join its consumer group (about 30 s on Tansu)...", flush=True)
        wait_for(lambda: http_ok(f"http://127.0.0.1:{port}/readyz/processing"), 180, "the worker to be ready", 0.5)
        env_file = write_env_file(Path(args.env_file), {
            "SOC": f"http://127.0.0.1:{port}", "SOC_KAFKA_BROKERS": stack.bootstrap, "SOC_REDIS_URL": stack.redis_url,
            "SOC_REDIS_PREFIX": stack.redis_prefix, "SOC_CONFIG_DIR": str(stack.config_dir), **tokens, **secrets_env})
        volume = ["--rate", str(args.rate)] if args.rate is not None else ["--intensity", str(args.intensity)]
        stack.processes.append(spawn("simulator", [*soc_command(), "simulate", *volume, "--scenario", args.scenario],
                                     stack.log_dir, stack.env()))
        print(f"\nboard    http://127.0.0.1:{port}/\ninbox    http://127.0.0.1:{port}/inbox\nsites    http://127.0.0.1:{port}/sites\nstats    http://127.0.0.1:{port}/stats  (leadership view; daily report at /stats/daily)")
        print(f"api      http://127.0.0.1:{port}/api/tickets\nmetrics  http://127.0.0.1:{port}/metrics\n")
        print("demo sign-ins for the pages (user / password):")
        for user_id, name, department, role in users.DEMO_USERS:
            if user_id in passwords:
                print(f"  {user_id:<11} {passwords[user_id]:<24} {name} ({department}, {role.value})")
        print("service tokens for machine clients (Authorization: Bearer <token>):")
        for dept_id in config.district.departments:
            print(f"  {dept_id:<22} {tokens[config.district.departments[dept_id].token_env]}")
        if wall_token:
            print(f"  {'wall screen (read-only)':<22} {wall_token}")
        print("Open311 api_key (POST /open311/v2/requests.json):")
        for name, key in open311_keys.items():
            print(f"  {name:<22} {key}")
        print("CAP feed tokens (POST /api/ingest/cap, Authorization: Bearer <token>):")
        for name, token in feed_tokens.items():
            print(f"  {name:<22} {token}")
        print(f"\nin another shell, for soc and curl against this stack: . {shlex.quote(str(args.env_file))}\n"
              f"  (SOC=http://127.0.0.1:{port}, SOC_KAFKA_BROKERS, SOC_REDIS_URL, SOC_REDIS_PREFIX and the tokens above)")
        print(f"try: curl -H 'Authorization: Bearer {tokens[config.district.departments['flood_control'].token_env]}'"
              f" http://127.0.0.1:{port}/api/tickets\nCtrl-C stops everything.", flush=True)
        while worker.popen.poll() is None:
            time.sleep(0.5)
        print(f"worker exited with {worker.popen.returncode}; see {worker.log_path}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        print("stopping...", file=sys.stderr)
        if env_file:
            remove_env_file(env_file)
        stack.stop()
        print(f"removed {forget_keys(stack.redis_url, stack.redis_prefix)} keys of {stack.redis_prefix} from Redis",
              file=sys.stderr)


def write_env_file(path: Path, env: Mapping[str, str]) -> tuple[Path, str]:
    """The stack's addresses and demo secrets as `export` lines, for a second shell to source: the examples in
    the docs read them from there. Readable by its owner only, as it holds the demo's tokens."""
    text = "".join(f"export {name}={shlex.quote(value)}\n" for name, value in env.items())
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
    return path, text


def remove_env_file(written: tuple[Path, str]) -> None:
    """Remove the file unless another `soc dev` has written its own there since."""
    path, text = written
    try:
        if path.read_text(encoding="utf-8") == text:
            path.unlink()
    except OSError:
        pass


def forget_keys(redis_url: str, prefix: str) -> int:
    """The demo's keys (tickets with test phone numbers among them) do not outlive it in a shared Redis."""
    import redis

    client = redis.Redis.from_url(redis_url)
    removed = 0
    try:
        batch = []
        for key in client.scan_iter(f"{prefix}:*", count=1000):
            batch.append(key)
            if len(batch) == 1000:
                removed += client.unlink(*batch)
                batch.clear()
        if batch:
            removed += client.unlink(*batch)
    except redis.RedisError as exc:
        print(f"could not remove the demo's keys ({exc}): delete {prefix}:* by hand", file=sys.stderr)
    finally:
        client.close()
    return removed


def main(argv: list[str] | None = None) -> int:
    from streams.settings import Settings

    defaults = Settings()
    default_config = str(defaults.config_dir)
    parser = argparse.ArgumentParser(prog="soc", description="SOC alert pipeline")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("dev", help="embedded broker + Redis + worker + simulator")
    p.add_argument("--port", type=int, default=defaults.web_port, help="worker web port (default SOC_WEB_PORT or 6066)")
    add_volume_arguments(p)
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument("--config-dir", default=default_config)
    p.add_argument("--demo-receiver", action="store_true",
                   help="run only a local DingTalk-format robot that lists what it receives (for the duty_room channel)")
    p.add_argument("--scenario", choices=["normal", "rainstorm", "rush_hour"], default="normal",
                   help="the simulator's scenario")
    p.add_argument("--demo-receiver-port", type=int, default=6070)
    p.add_argument("--env-file", default="soc-dev.env",
                   help="where to write the stack's SOC_* settings and demo tokens for `. soc-dev.env` in another "
                        "shell (default soc-dev.env in the current directory; removed on exit)")
    p.set_defaults(func=cmd_dev)

    p = sub.add_parser("users", help="accounts in SOC_REDIS_URL: add, disable, enable, reset, token, revoke, list")
    users.add_arguments(p)
    p.set_defaults(func=cmd_users)

    p = sub.add_parser("worker", help="run one worker against SOC_KAFKA_BROKERS and SOC_REDIS_URL")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("simulate", help="produce a sub-district's traffic for all sources and the whitelist")
    add_volume_arguments(p)
    p.add_argument("--duration", type=float, default=0, help="seconds, 0 = until Ctrl-C")
    p.add_argument("--scenario", choices=["normal", "rainstorm", "rush_hour"], default="normal")
    p.add_argument("--seed", type=int, default=None)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("send", help="publish JSON payloads (object, array or JSON lines) to a raw topic")
    p.add_argument("source", help="traffic, flood, city, construction or sites")
    p.add_argument("file", help="path, or - for stdin")
    p.set_defaults(func=cmd_send)

    p = sub.add_parser("check-config", help="validate a config directory")
    p.add_argument("config_dir", nargs="?", default=default_config)
    p.add_argument("--now", type=aware_time, default=None,
                   help="check the duty roster's 30 days from this time (RFC 3339) instead of now")
    p.set_defaults(func=cmd_check_config)

    p = sub.add_parser("rebuild", help="rebuild the Redis projection from soc.tickets")
    p.set_defaults(func=cmd_rebuild)

    p = sub.add_parser("topics", help="create the topics on SOC_KAFKA_BROKERS")
    p.set_defaults(func=cmd_topics)

    p = sub.add_parser("repartition", help="workers stopped: move the ticket table to a new app id with more "
                                           "partitions and grow the keyed topics (docs/operations/scaling.md)")
    p.add_argument("--partitions", type=int, required=True, help="the new SOC_PARTITIONS")
    p.add_argument("--to-app-id", required=True, help="the new SOC_APP_ID (its changelog and consumer group)")
    p.set_defaults(func=cmd_repartition)

    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
