"""The worker's start: every topic it needs exists, with the partitions and configs it expects.

`soc worker` calls ensure_topics() before Faust starts, so Faust never auto-creates a topic with
its own partition count (an agent then crashes with PartitionsMismatch), and a broker whose
topics disagree with the configuration stops the worker with one line per topic instead.
`soc topics` and the embedded dev stack (streams.ops.devstack.create_topics) go through it too.

Only kafka-python here, no Faust: it runs before the worker builds its Faust app.
"""
from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from streams.topics import TopicSpec, topic_specs

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 60.0  # a worker may start before its broker answers
CLIENT_ID = "soc-admin"
UNKNOWN_TOPIC_OR_PARTITION = 3


@dataclass(frozen=True)
class Mismatch:
    topic: str
    partitions: int
    expected: int
    configured: bool  # the expected count is SOC_PARTITIONS, not fixed by the topic's spec

    def __str__(self) -> str:
        noun = "partition" if self.partitions == 1 else "partitions"
        line = f"topic {self.topic} has {self.partitions} {noun}, expected {self.expected}"
        return f"{line} (SOC_PARTITIONS)" if self.configured else line


class TopicMismatch(Exception):
    """Existing topics whose partition count differs from the expected one; str(): one line each."""

    def __init__(self, mismatches: Sequence[Mismatch]):
        self.mismatches = list(mismatches)
        super().__init__("\n".join(self.lines))

    @property
    def lines(self) -> list[str]:
        return [str(m) for m in self.mismatches]


class BrokerUnavailable(TimeoutError):
    """The broker did not answer, or the topics were not all there, before the deadline."""


@dataclass(frozen=True)
class Wanted:
    name: str
    partitions: int
    configs: dict[str, str]
    configured: bool


def resolve(specs: Iterable[TopicSpec], partitions: int) -> dict[str, Wanted]:
    """Specs with the configured partition count filled in, by name (the first spec of a name wins)."""
    wanted: dict[str, Wanted] = {}
    for spec in specs:
        if spec.name not in wanted:
            wanted[spec.name] = Wanted(spec.name, spec.partitions or partitions, dict(spec.configs),
                                       spec.partitions is None)
    return wanted


def durable(configs: dict[str, str], replication: int) -> dict[str, str]:
    """A replicated topic also requires all but one replica in sync for an acks=all write, so a write
    survives losing one broker (min.insync.replicas 2 of 3)."""
    if replication < 2:
        return dict(configs)
    return {**configs, "min.insync.replicas": str(replication - 1)}


def mismatches(wanted: dict[str, Wanted], present: dict[str, int]) -> list[Mismatch]:
    return [Mismatch(name, present[name], w.partitions, w.configured)
            for name, w in wanted.items() if name in present and present[name] != w.partitions]


def ensure_topics(bootstrap_servers: str | list[str], partitions: int, replication: int = 1,
                  specs: Iterable[TopicSpec] | None = None, timeout: float = DEFAULT_TIMEOUT_S,
                  security: dict | None = None) -> list[str]:
    """Create the missing topics of `specs` (default: topic_specs(), no changelogs; the worker passes
    topic_specs(app_id)) and check the partition count of those that exist. Returns the names this
    call created. Raises TopicMismatch (before creating anything) when an existing topic has another
    partition count, BrokerUnavailable when the broker does not answer before `timeout` seconds, and
    kafka-python's error for what retrying cannot fix (e.g. a replication factor above the brokers).

    Another worker may create the same topics at the same moment: a TopicAlreadyExistsError is not
    an error, the topic is described again and checked like any existing one."""
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    wanted = resolve(specs if specs is not None else topic_specs(), partitions)
    deadline = time.monotonic() + timeout
    created: list[str] = []
    admin = None
    last_error: BaseException | None = None
    try:
        while True:
            try:
                if admin is None:
                    admin = _connect(bootstrap_servers, deadline, security)
                present = partition_counts(admin, list(wanted))
                found = mismatches(wanted, present)
                if found:
                    raise TopicMismatch(found)
                missing = [w for name, w in wanted.items() if name not in present]
                if not missing:
                    if created:
                        log.info("created topics %s", ", ".join(created))
                    return created
                for w in missing:
                    try:
                        admin.create_topics([NewTopic(w.name, w.partitions, replication,
                                                      topic_configs=durable(w.configs, replication))],
                                            timeout_ms=_remaining_ms(deadline))
                        created.append(w.name)
                    except TopicAlreadyExistsError:
                        pass  # created meanwhile by another worker (or not yet in the metadata): described again
                # Describe again: a topic created here or elsewhere shows in the metadata, is checked,
                # and the loop ends once nothing is missing.
                last_error = None
            except TopicMismatch:
                raise
            except Exception as exc:
                if not _retriable(exc):
                    raise
                last_error = exc
                if admin is not None and not isinstance(exc, _broker_response_errors()):
                    _close(admin)  # the connection itself failed: connect again
                    admin = None
            if time.monotonic() >= deadline:
                what = f": {last_error}" if last_error else ""
                raise BrokerUnavailable(f"broker {_servers_text(bootstrap_servers)} did not have the topics ready "
                                        f"within {timeout:.0f}s{what}")
            time.sleep(0.2 if last_error is None else 0.5)
    finally:
        if admin is not None:
            _close(admin)


def partition_counts(admin, names: list[str] | None = None) -> dict[str, int]:
    """Topic name -> partition count, of the `names` that exist (all non-internal topics for None)."""
    counts = {}
    for topic in admin.describe_topics(names):
        if topic.get("is_internal"):
            continue
        code = topic.get("error_code", 0)
        if code == 0 and topic["partitions"]:
            counts[topic["name"]] = len(topic["partitions"])
        elif code not in (0, UNKNOWN_TOPIC_OR_PARTITION):
            from kafka.errors import for_code

            raise for_code(code)(f"describing {topic['name']}")  # e.g. leader not yet elected: retried
    return counts


def connect(bootstrap_servers: str | list[str], timeout: float = DEFAULT_TIMEOUT_S, security: dict | None = None):
    """A KafkaAdminClient, once the broker answers (retrying until `timeout` seconds). `security`:
    Settings.kafka_client_kwargs() (TLS, SASL)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return _connect(bootstrap_servers, deadline, security)
        except Exception as exc:
            if not _retriable(exc) or time.monotonic() >= deadline:
                if _retriable(exc):
                    raise BrokerUnavailable(f"broker {_servers_text(bootstrap_servers)} did not answer "
                                            f"within {timeout:.0f}s: {exc}") from exc
                raise
            time.sleep(0.5)


def _connect(bootstrap_servers: str | list[str], deadline: float, security: dict | None = None):
    from kafka.admin import KafkaAdminClient

    options = {"bootstrap_servers": bootstrap_servers, "client_id": CLIENT_ID,
               "request_timeout_ms": max(1000, min(10_000, _remaining_ms(deadline))), **(security or {})}
    if "bootstrap_timeout_ms" in KafkaAdminClient.DEFAULT_CONFIG:
        # kafka-python 3 retries the bootstrap itself until then (a failed constructor leaves its I/O
        # thread behind: one attempt, not one per retry); 2.x raises NoBrokersAvailable at once.
        options["bootstrap_timeout_ms"] = _remaining_ms(deadline)
    return KafkaAdminClient(**options)


def _remaining_ms(deadline: float) -> int:
    return max(1000, int((deadline - time.monotonic()) * 1000))


def _retriable(exc: BaseException) -> bool:
    return isinstance(exc, OSError) or bool(getattr(exc, "retriable", False))


def _broker_response_errors() -> tuple[type, ...]:
    from kafka.errors import BrokerResponseError

    return (BrokerResponseError,)


def _close(admin) -> None:
    try:
        admin.close()
    except Exception:  # closing a client whose broker went away
        pass


def _servers_text(bootstrap_servers: str | list[str]) -> str:
    return bootstrap_servers if isinstance(bootstrap_servers, str) else ",".join(bootstrap_servers)


def ensure_topics_or_exit_code(timeout: float = DEFAULT_TIMEOUT_S) -> int:
    """Create the missing topics and check the existing ones (streams.ops.bootstrap): 0 when they are
    ready; 2 with one line per mismatched topic on stderr; 1 when the broker cannot make them ready."""
    from kafka.errors import KafkaError

    from streams.settings import Settings

    settings = Settings()
    try:
        created = ensure_topics(settings.bootstrap_servers, settings.partitions, settings.replication_factor,
                                topic_specs(settings.app_id), timeout, settings.kafka_client_kwargs())
    except TopicMismatch as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return 2
    except (BrokerUnavailable, KafkaError) as exc:
        print(f"topics on {settings.kafka_brokers} not ready: {exc}", file=sys.stderr)
        return 1
    if created:
        print(f"created topics: {', '.join(created)}", flush=True)
    return 0
