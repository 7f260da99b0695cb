"""What the topology's parts share: the `Pipeline` the factory builds (the app, its topics and books, and
what the views, timers and tests reach), assembled by `assemble`, and the batch sizes of the agents."""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import partial

import faust
from prometheus_client import CollectorRegistry

from handlers.intake import Rejected, dead_letter
from schemas.accounts import AuditRecord
from schemas.cap import CapRecord
from schemas.config import Config
from schemas.plans import PlanRun
from schemas.records import DeadLetter, TicketEvent
from schemas.resources import ResourceHold
from schemas.response import ResponseChange
from schemas.silences import Inhibitor, Silence
from streams import topics
from streams.metrics import Metrics
from streams.settings import Settings
from streams.store import TicketStore
from streams.topology import faust_compat
from streams.topology.health import Health
from streams.topology.mirror import TopicMirror, aiokafka_security
from streams.topology.notifier import Notifier
from streams.topology.outputs import Outputs
from streams.topology.silences import ModelBook, history
from streams.topology.sites import Whitelist
from streams.topology.warnings import Warnings

log = logging.getLogger("soc.pipeline")

# Events per batch on both hops, and how long a batch waits to fill (docs/performance.md).
BATCH = 2000
BATCH_WITHIN_S = 0.01
# A timer's command sent and not yet seen taken is sent again after this long (a lost send).
RESEND_STEP_AFTER = timedelta(seconds=60)
# The topics agents read. The assignment also holds the changelogs, which are read only while
# recovering tables: they always look behind and must never be sought.
AGENT_TOPICS = frozenset({*topics.RAW_TOPICS.values(), topics.SITES, topics.INCIDENTS, topics.TICKET_EVENTS,
                          topics.AUDIT})
COMPACTED_INPUTS = frozenset({topics.SITES})

Clock = Callable[[], datetime]


class SentSteps:
    """Commands this worker's timers sent (escalation steps, retroactive levels), so each is sent once;
    again only if it was lost. A command not yet taken is sent again after RESEND_STEP_AFTER, then after
    twice as long each time: a ticket step minutes behind (a storm's backlog, a slow broker) is sent each
    waiting command a few times, not once a minute, which had grown the very backlog it waited on."""

    def __init__(self):
        self._sent: dict[str, tuple[datetime, int]] = {}  # event id -> (last sent, times sent)

    def should_send(self, event_id: str, now: datetime) -> bool:
        sent = self._sent.get(event_id)
        if sent is not None and now - sent[0] < RESEND_STEP_AFTER * 2 ** (sent[1] - 1):
            return False
        times = 1 if sent is None else sent[1] + 1
        if sent is not None:
            log.warning("timer command sent before and still not taken: sending again",
                        extra={"event_id": event_id, "times": times})
        self._sent[event_id] = (now, times)
        return True

    def keep_only(self, event_ids: set[str]) -> None:
        for event_id in [e for e in self._sent if e not in event_ids]:
            del self._sent[event_id]


@dataclass(frozen=True)
class Topics:
    """The topics the worker sends to and its agents read (Faust topics of raw bytes)."""

    raw: dict[str, faust.TopicT]  # soc.raw.<source>, by source
    sites: faust.TopicT
    incidents: faust.TopicT
    ticket_events: faust.TopicT
    tickets: faust.TopicT
    dead_letters: faust.TopicT
    audit: faust.TopicT
    silences: faust.TopicT
    response: faust.TopicT
    inhibitors: faust.TopicT
    plan_runs: faust.TopicT
    resources: faust.TopicT
    cap: faust.TopicT


@dataclass(frozen=True)
class Books:
    """The topics every worker reads whole (streams/topology/mirror.py), as read models."""

    sites: Whitelist
    silences: ModelBook[Silence]
    response: ModelBook[list[ResponseChange]]
    inhibitors: ModelBook[Inhibitor]
    plan_runs: ModelBook[PlanRun]
    resources: ModelBook[ResourceHold]  # who holds each resource
    cap: ModelBook[CapRecord]  # CAP alerts as recorded (streams/topology/warnings.py)


@dataclass
class Pipeline:
    """The built app and what its views, timers and tests reach: nothing here is a module global."""

    app: faust.App
    settings: Settings
    config: Config
    store: TicketStore
    clock: Clock
    metrics: Metrics
    registry: CollectorRegistry
    health: Health
    topics: Topics
    books: Books
    # The pages' and API's own Redis client (its own connections), beside the pipeline's `store`.
    web_store: TicketStore
    dedup_key_to_tickets: faust.Table
    # What fills the books; agents wait for all of them before their first batch.
    mirrors: tuple[TopicMirror, ...] = ()
    agents: dict[str, faust.types.AgentT] = field(default_factory=dict)
    sent_steps: SentSteps = field(default_factory=SentSteps)
    sent_responses: SentSteps = field(default_factory=SentSteps)
    notifier: Notifier | None = None
    warnings: Warnings | None = None  # CAP alerts in (streams/topology/warnings.py)
    # The level-triggered plan starts this worker sent.
    sent_activations: SentSteps = field(default_factory=SentSteps)
    # The preventive tickets' openings this worker sent (handlers/preventive.py).
    sent_preventive: SentSteps = field(default_factory=SentSteps)
    # Warning period id -> when its places' tickets were last all found opened (PREVENTIVE_RECHECK).
    preventive_done: dict[str, datetime] = field(default_factory=dict)

    def send_command(self, event: TicketEvent, dedup_key: str) -> None:
        """A command on a ticket, keyed by its dedup key so it meets the ticket's state."""
        self.topics.ticket_events.send_soon(key=dedup_key.encode(), value=event.model_dump_json().encode())

    def owns(self, dedup_key: str) -> bool:
        """Whether this worker holds the key's partition (escalation and retention act only there)."""
        partition = self.app.producer.key_partition(topics.TICKET_EVENTS, dedup_key.encode()).partition
        return faust_compat.assigned(self.app, topics.TICKET_EVENTS, partition)

    async def dead_letter(self, source: str, message, rejected: Rejected, out: Outputs) -> None:
        """An input's dead letter, among the outputs its batch awaits."""
        self.metrics.rejected.labels(source, rejected.reason).inc()
        record = dead_letter(message.topic, message.partition, message.offset, message.value, rejected,
                             record_time(message, self.clock))
        log.warning("dead-lettered", extra={"source": source, "topic": message.topic, "partition": message.partition,
                                            "offset": message.offset, "reason": rejected.reason})
        await out.send(topics.DEADLETTER, record.source_topic.encode(), record.model_dump_json().encode())

    def send_dead_letter(self, record: DeadLetter) -> None:
        self.topics.dead_letters.send_soon(key=record.source_topic.encode(), value=record.model_dump_json().encode())

    def send_audit(self, record: AuditRecord) -> None:
        self.topics.audit.send_soon(key=record.user_id.encode(), value=record.model_dump_json().encode())


def record_time(message, clock: Clock) -> datetime:
    """When the record reached Kafka: its own timestamp, so a replay stamps the time the first run did."""
    if message.timestamp is not None and message.timestamp > 0:
        return datetime.fromtimestamp(message.timestamp, timezone.utc)
    return clock()


def assemble(app: faust.App, settings: Settings, config: Config, store: TicketStore, clock: Clock, metrics: Metrics,
             registry: CollectorRegistry, web_store: TicketStore) -> Pipeline:
    """The Pipeline over `app`: its topics, its table, and the topics every worker reads whole, as books."""

    def raw_topic(*names: str, **kw) -> faust.TopicT:
        return app.topic(*names, key_serializer="raw", value_serializer="raw", **kw)

    # Every worker reads these whole (streams/topology/mirror.py).
    mirror = partial(TopicMirror, bootstrap_servers=settings.bootstrap_servers, security=aiokafka_security(settings),
                     on_bad_record=lambda key, exc: log.warning("bad record on a mirrored topic",
                                                                extra={"key": key, "error": str(exc)[:200]}))
    sites_mirror, silences_mirror, response_mirror, inhibitor_mirror, cap_mirror, runs_mirror, holds_mirror = (
        mirror(topics.SITES), mirror(topics.SILENCES), mirror(topics.RESPONSE), mirror(topics.INHIBITORS),
        mirror(topics.CAP), mirror(topics.PLAN_RUNS), mirror(topics.RESOURCES))
    pipeline = Pipeline(
        app=app, settings=settings, config=config, store=store, clock=clock, metrics=metrics, registry=registry,
        health=Health(),
        topics=Topics(
            raw={source: raw_topic(name) for source, name in topics.RAW_TOPICS.items()},
            sites=raw_topic(topics.SITES, partitions=1),
            incidents=raw_topic(topics.INCIDENTS),
            ticket_events=raw_topic(topics.TICKET_EVENTS),
            tickets=raw_topic(topics.TICKETS),
            dead_letters=raw_topic(topics.DEADLETTER),
            audit=raw_topic(topics.AUDIT, partitions=1),
            silences=raw_topic(topics.SILENCES, partitions=1),
            response=raw_topic(topics.RESPONSE, partitions=1),
            inhibitors=raw_topic(topics.INHIBITORS, partitions=1),
            plan_runs=raw_topic(topics.PLAN_RUNS, partitions=1),
            resources=raw_topic(topics.RESOURCES, partitions=1),
            cap=raw_topic(topics.CAP, partitions=1),
        ),
        books=Books(
            sites=Whitelist(sites_mirror.values),
            silences=ModelBook(silences_mirror.values, Silence.model_validate),
            response=ModelBook(response_mirror.values, history),
            inhibitors=ModelBook(inhibitor_mirror.values, Inhibitor.model_validate),
            plan_runs=ModelBook(runs_mirror.values, PlanRun.model_validate),
            resources=ModelBook(holds_mirror.values, ResourceHold.model_validate),
            cap=ModelBook(cap_mirror.values, CapRecord.model_validate),
        ),
        web_store=web_store,
        # Values are KeyState JSON bytes: the changelog sends them as they are.
        dedup_key_to_tickets=app.Table("dedup_key_to_tickets", default=None, partitions=settings.partitions,
                                       value_type=bytes),
        mirrors=(sites_mirror, silences_mirror, response_mirror, inhibitor_mirror, cap_mirror, runs_mirror,
                 holds_mirror),
    )
    pipeline.warnings = Warnings(pipeline, cap_mirror, SentSteps())
    return pipeline
