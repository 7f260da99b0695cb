"""The Faust topology, built by one factory: two hops, each over batches.

    soc.raw.<source> --parse_<source>--> soc.incidents ─┐  (keyed by dedup key, co-partitioned)
                                         soc.ticket-events ─┴--decide_tickets--> dedup_key_to_tickets
                                                                    └-> Redis, soc.tickets
    soc.tickets --notify_ticket_changes--> the notifier's queues --send_notifications--> channels (notifier.py)

Agents only loop over batches, call handlers (handlers.intake, handlers.ticketing) and execute the
typed outcomes; every decision is a plain function a unit test can call without a broker.
Importing this module builds nothing: `build_app` does, from what it is given.
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial
from datetime import datetime, timedelta, timezone

import faust
import orjson
from faust.sensors.prometheus import setup_prometheus_sensors
from prometheus_client import CollectorRegistry
from redis.exceptions import RedisError

from handlers import escalation, heartbeat, notify, performance, response, ticketing
from handlers import silences as silence_rules
from handlers.base import Context, Heard
from handlers.intake import Rejected, dead_letter, parsed
from handlers.lifecycle import Verdict
from handlers.tickets import PIPELINE
from schemas.accounts import AuditRecord
from schemas.config import Config
from schemas.correlation import Sighting
from schemas.enums import Escalation
from schemas.raw import SiteRegistration
from schemas.records import DeadLetter, Incident, KeyState, Ticket, TicketEvent
from schemas.response import NUMBER, ResponseChange
from schemas.silences import Inhibitor, Silence
from streams import topics
from streams.accounts import AuditLog
from streams.http import register as register_views
from streams.logs import logging_config
from streams.metrics import Metrics
from streams.notify_store import NotificationStore
from streams.settings import Settings
from streams.store import TicketStore, until_written
from streams.topology import faust_compat
from streams.topology.health import Health
from streams.topology.notifier import HORIZON, Notifier
from streams.topology.mirror import TopicMirror, aiokafka_security
from streams.topology.silences import ModelBook, history
from streams.topology.sites import Whitelist
from streams.topology.warnings import Warnings

log = logging.getLogger("soc.pipeline")

# The window the on-time gauge covers (the API takes any window).
PERFORMANCE_WINDOW = timedelta(days=30)
# Events per batch on both hops, and how long a batch waits to fill (bench/README.md).
BATCH = 2000
BATCH_WITHIN_S = 0.01
# Parsed key states kept, so a hot key (a flood station in a storm) is parsed once, not per batch.
PARSED_STATES = 4096
# How a sighting on soc.ticket-events tells itself from a command (schemas/correlation.py).
SIGHTING_MARK = b'"kind":"sighting"'
# After a failed heartbeat write, the parse agents go this long without them.
HEARD_PAUSE_S = 10.0
# A timer's command sent and not yet seen taken is sent again after this long (a lost send).
RESEND_STEP_AFTER = timedelta(seconds=60)

Clock = Callable[[], datetime]


class SentSteps:
    """Commands this worker's timers sent (escalation steps, retroactive levels), so each is sent once;
    again only if it was lost."""

    def __init__(self):
        self._sent: dict[str, datetime] = {}

    def should_send(self, event_id: str, now: datetime) -> bool:
        sent = self._sent.get(event_id)
        if sent is not None and now - sent < RESEND_STEP_AFTER:
            return False
        if sent is not None:
            log.warning("timer command sent before and still not taken: sending again", extra={"event_id": event_id})
        self._sent[event_id] = now
        return True

    def keep_only(self, event_ids: set[str]) -> None:
        for event_id in [e for e in self._sent if e not in event_ids]:
            del self._sent[event_id]


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
    raw_topics: dict[str, faust.TopicT]
    sites_topic: faust.TopicT
    incident_topic: faust.TopicT
    ticket_event_topic: faust.TopicT
    ticket_topic: faust.TopicT
    deadletter_topic: faust.TopicT
    audit_topic: faust.TopicT
    # The pages' and API's own Redis client (its own connections), beside the pipeline's `store`.
    web_store: TicketStore
    dedup_key_to_tickets: faust.Table
    whitelist: Whitelist
    silences_topic: faust.TopicT
    silences: ModelBook[Silence]
    response_topic: faust.TopicT
    response: ModelBook[list[ResponseChange]]
    inhibitor_topic: faust.TopicT
    inhibitors: ModelBook[Inhibitor]
    mirrors: tuple[TopicMirror, ...] = ()
    agents: dict[str, faust.types.AgentT] = field(default_factory=dict)
    sent_steps: SentSteps = field(default_factory=SentSteps)
    sent_responses: SentSteps = field(default_factory=SentSteps)
    notifier: Notifier | None = None
    warnings: Warnings | None = None  # CAP alerts in (streams/topology/warnings.py)

    def send_command(self, event: TicketEvent, dedup_key: str) -> None:
        """A command on a ticket, keyed by its dedup key so it meets the ticket's state."""
        self.ticket_event_topic.send_soon(key=dedup_key.encode(), value=event.model_dump_json().encode())

    def owns(self, dedup_key: str) -> bool:
        """Whether this worker holds the key's partition (escalation and retention act only there)."""
        partition = self.app.producer.key_partition(topics.TICKET_EVENTS, dedup_key.encode()).partition
        return faust_compat.assigned(self.app, topics.TICKET_EVENTS, partition)

    def dead_letter(self, source: str, message, rejected: Rejected) -> None:
        self.metrics.rejected.labels(source, rejected.reason).inc()
        record = dead_letter(message.topic, message.partition, message.offset, message.value, rejected,
                             record_time(message, self.clock))
        log.warning("dead-lettered", extra={"source": source, "topic": message.topic, "partition": message.partition,
                                            "offset": message.offset, "reason": rejected.reason})
        self.send_dead_letter(record)

    def send_dead_letter(self, record: DeadLetter) -> None:
        self.deadletter_topic.send_soon(key=record.source_topic.encode(), value=record.model_dump_json().encode())

    def send_audit(self, record: AuditRecord) -> None:
        self.audit_topic.send_soon(key=record.user_id.encode(), value=record.model_dump_json().encode())


def record_time(message, clock: Clock) -> datetime:
    """When the record reached Kafka: its own timestamp, so a replay stamps the time the first run did."""
    if message.timestamp is not None and message.timestamp > 0:
        return datetime.fromtimestamp(message.timestamp, timezone.utc)
    return clock()


def build_app(settings: Settings, config: Config, store: TicketStore, clock: Clock, metrics: Metrics,
              registry: CollectorRegistry, notify_rules: notify.Rules | None = None,
              web_store: TicketStore | None = None) -> Pipeline:
    """notify_rules: notify.yaml compiled (handlers.notify.compile_rules); None notifies nobody.
    web_store: the store the HTTP views read, on connections of its own (None: `store`'s)."""
    faust_compat.apply_fixes(settings.fetch_max_wait_ms, AGENT_TOPICS - COMPACTED_INPUTS)
    (settings.data_dir / settings.app_id).mkdir(parents=True, exist_ok=True)
    app = faust.App(
        settings.app_id,
        broker=settings.broker_url,
        broker_credentials=settings.faust_broker_credentials(),  # TLS / SASL (None: plaintext)
        store="memory://",
        datadir=str(settings.data_dir / settings.app_id / "faust"),
        web_host=settings.web_host,
        # Listen where SOC_WEB_HOST says (127.0.0.1 by default), not on Faust's 0.0.0.0.
        web_bind=settings.web_host,
        web_port=settings.web_port,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        # The worker creates and checks its topics before it starts (streams/ops/bootstrap.py).
        topic_allow_declare=False,
        producer_acks=-1 if settings.kafka_acks == "all" else int(settings.kafka_acks),
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        broker_rebalance_timeout=settings.rebalance_timeout_s,
        # Measured in bench/README.md: 5 ms linger and 256 KiB batches cut produce requests (Tansu
        # spends more per request than per byte).
        producer_linger_ms=5,
        producer_max_batch_size=256 * 1024,
        stream_buffer_maxsize=8192,
        broker_max_poll_records=2000,
        broker_commit_every=10_000,
        broker_commit_interval=2.0,
        table_standby_replicas=0,
        # The check guards RocksDB files against a truncated changelog. With the memory store it only
        # fires when a partition stays with this worker across a rebalance while its last changelog
        # writes are still in flight, and then crashes the worker over data it holds itself.
        recovery_consistency_check=False,
        web_in_thread=False,
        logging_config=logging_config(settings.log_level),
    )
    if settings.faust_sensors:
        setup_prometheus_sensors(app, pattern="/metrics", registry=registry, name_prefix="faust")

    def raw_topic(*names: str, **kw) -> faust.TopicT:
        return app.topic(*names, key_serializer="raw", value_serializer="raw", **kw)

    # Every worker reads these two whole (streams/topology/mirror.py).
    mirror = partial(TopicMirror, bootstrap_servers=settings.bootstrap_servers, security=aiokafka_security(settings),
                     on_bad_record=lambda key, exc: log.warning("bad record on a mirrored topic",
                                                                extra={"key": key, "error": str(exc)[:200]}))
    sites_mirror, silences_mirror, response_mirror, inhibitor_mirror, cap_mirror = (
        mirror(topics.SITES), mirror(topics.SILENCES), mirror(topics.RESPONSE), mirror(topics.INHIBITORS),
        mirror(topics.CAP))
    pipeline = Pipeline(
        app=app, settings=settings, config=config, store=store, clock=clock, metrics=metrics, registry=registry,
        health=Health(),
        raw_topics={source: raw_topic(name) for source, name in topics.RAW_TOPICS.items()},
        sites_topic=raw_topic(topics.SITES, partitions=1),
        incident_topic=raw_topic(topics.INCIDENTS),
        ticket_event_topic=raw_topic(topics.TICKET_EVENTS),
        ticket_topic=raw_topic(topics.TICKETS),
        deadletter_topic=raw_topic(topics.DEADLETTER),
        audit_topic=raw_topic(topics.AUDIT, partitions=1),
        web_store=web_store or store,
        # Values are KeyState JSON bytes: the changelog sends them as they are.
        dedup_key_to_tickets=app.Table("dedup_key_to_tickets", default=None, partitions=settings.partitions,
                                       value_type=bytes),
        whitelist=Whitelist(sites_mirror.values),
        silences_topic=raw_topic(topics.SILENCES, partitions=1),
        silences=ModelBook(silences_mirror.values, Silence.model_validate),
        response_topic=raw_topic(topics.RESPONSE, partitions=1),
        response=ModelBook(response_mirror.values, history),
        inhibitor_topic=raw_topic(topics.INHIBITORS, partitions=1),
        inhibitors=ModelBook(inhibitor_mirror.values, Inhibitor.model_validate),
        mirrors=(sites_mirror, silences_mirror, response_mirror, inhibitor_mirror, cap_mirror),
    )
    pipeline.warnings = Warnings(pipeline, cap_mirror, raw_topic(topics.CAP, partitions=1), SentSteps())
    # Both inputs of the ticket step in one stream: the table write goes to the partition they share.
    decide_topic = raw_topic(topics.INCIDENTS, topics.TICKET_EVENTS)

    agent = pipeline.health.reporting_agent(app)
    for source, topic in pipeline.raw_topics.items():
        pipeline.agents[f"parse_{source}"] = agent(topic, f"parse_{source}")(_parse_agent(pipeline, source))
    pipeline.agents["check_sites"] = agent(pipeline.sites_topic, "check_sites")(_check_sites(pipeline))
    for one in pipeline.mirrors:
        app.task(pipeline.health.reporting_task(f"mirror {one.topic}", one.run))
    pipeline.agents["decide_tickets"] = agent(decide_topic, "decide_tickets")(_decide_tickets(pipeline))
    pipeline.agents["record_audit"] = agent(pipeline.audit_topic, "record_audit")(_record_audit(pipeline))

    timer = pipeline.health.guarded_timer(app, metrics)
    timer(settings.escalation_interval_s, "escalate_overdue_tickets")(lambda: escalate_overdue_tickets(pipeline))
    timer(settings.escalation_interval_s, "respond_open_tickets")(lambda: respond_open_tickets(pipeline))
    timer(settings.escalation_interval_s, "watch_devices")(lambda: watch_devices(pipeline))
    timer(settings.escalation_interval_s, "notice_all_clear")(lambda: notice_all_clear(pipeline))
    timer(settings.retention_interval_s, "expire_closed_tickets")(lambda: expire_closed_tickets(pipeline))
    timer(settings.gauges_interval_s, "refresh_gauges")(lambda: refresh_gauges(pipeline))
    timer(settings.escalation_interval_s, "keep_up_cap_signals")(pipeline.warnings.keep_up)
    watchdog = faust_compat.PartitionWatchdog(app, metrics, AGENT_TOPICS)
    timer(watchdog.interval_s, "watch_partitions")(watchdog.look)

    if notify_rules is not None and notify_rules.channels:
        notifier = Notifier(notify_rules, NotificationStore(store.redis, store.prefix, HORIZON), clock, metrics,
                            pipeline.send_dead_letter)
        pipeline.notifier = notifier
        pipeline.agents["notify_ticket_changes"] = agent(pipeline.ticket_topic, "notify_ticket_changes")(
            _notify_ticket_changes(pipeline, notifier))
        timer(settings.notify_interval_s, "send_notifications")(notifier.send_due)

        @app.on_before_shutdown.connect
        async def close_notifier(app, **kwargs) -> None:
            await notifier.close()

    register_views(pipeline)  # the views receive the pipeline; they import nothing of it
    return pipeline


# The topics agents read. The assignment also holds the changelogs, which are read only while
# recovering tables: they always look behind and must never be sought.
AGENT_TOPICS = frozenset({*topics.RAW_TOPICS.values(), topics.SITES, topics.INCIDENTS, topics.TICKET_EVENTS,
                          topics.AUDIT})
COMPACTED_INPUTS = frozenset({topics.SITES})


# ------------------------------------------------------------------ hop 1: raw -> incident

def _parse_agent(p: Pipeline, source: str):
    async def parse(stream):
        for one in p.mirrors:  # the whitelist (and the rest) whole before the first event
            await one.ready.wait()
        paused_until = 0.0
        in_order = faust_compat.InOrder(p.app, p.metrics)
        async for events in stream.take_events(BATCH, within=BATCH_WITHIN_S):
            # In offset order: incidents reach the ticket step in the order their readings came.
            events = await in_order.admitted(events)
            p.metrics.events.labels(source).inc(len(events))
            heard: list[Heard] = []  # every one: the all-clear counts readings, not just the latest
            for event in events:
                message = event.message
                ctx = Context(p.config, record_time(message, p.clock), p.whitelist)
                try:
                    incident, alive = parsed(source, message.value, ctx)
                except Rejected as rejected:
                    p.dead_letter(source, message, rejected)
                    continue
                except Exception as exc:  # a handler bug must not stop the partition
                    log.exception("handler failed", extra={"source": source, "offset": message.offset})
                    p.dead_letter(source, message, Rejected("handler_error", f"{type(exc).__name__}: {exc}"))
                    continue
                if alive is not None and (heartbeat.tracked(p.config, alive.kind, alive.device)
                                          or alive.kind in p.config.rules.all_clear):
                    heard.append(alive)
                if incident is None:
                    continue
                p.metrics.incidents.labels(source, incident.category.value, incident.severity.value).inc()
                p.incident_topic.send_soon(key=incident.dedup_key.encode(), value=incident.model_dump_json().encode())
            # Heartbeats are advisory: while Redis fails, parsing goes on without them rather than waiting
            # out a socket timeout per batch (a device's next report after Redis is back makes it up).
            if heard and time.monotonic() >= paused_until:
                try:
                    await p.store.record_heard(heard)
                except (RedisError, OSError) as exc:
                    paused_until = time.monotonic() + HEARD_PAUSE_S
                    log.warning("heartbeats not recorded; retrying in a while",
                                extra={"source": source, "readings": len(heard), "error": str(exc)})

    parse.__name__ = parse.__qualname__ = f"parse_{source}"
    return parse


def _check_sites(p: Pipeline):
    async def check_sites(stream):
        """The whitelist itself is mirrored on every worker (streams/topology/mirror.py); this agent,
        one per partition in the group, only dead-letters registrations that are not valid."""
        async for event in stream.events():
            message = event.message
            if message.value is None:
                continue
            try:
                SiteRegistration.model_validate_json(message.value)
            except ValueError as exc:
                p.dead_letter("sites", message, Rejected("invalid", str(exc)[:500]))

    return check_sites


def _record_audit(p: Pipeline):
    audit_log = AuditLog(p.store.redis, p.store.prefix)

    async def record_audit(stream):
        """soc.audit into Redis for GET /api/audit, in batches; a record that is not one is dead-lettered."""
        async for events in stream.take_events(500, within=0.5):
            good = []
            for event in events:
                message = event.message
                try:
                    good.append((message.value, AuditRecord.model_validate_json(message.value or b"").at))
                except ValueError as exc:
                    p.dead_letter("audit", message, Rejected("invalid", str(exc)[:500]))
            if good:
                await until_written(lambda: audit_log.record(good))

    return record_audit


# ------------------------------------------------------------------ hop 2: incident | command -> tickets

class States:
    """The batch's view of dedup_key_to_tickets: each key read and parsed once, written once."""

    def __init__(self, table, cache: dict):
        self.table, self.cache = table, cache
        self.current: dict[str, KeyState | None] = {}
        self.changed: dict[str, object] = {}  # key -> the last event that changed it (its partition)

    def get(self, key: str) -> KeyState | None:
        if key not in self.current:
            raw = self.table.get(key)
            hit = self.cache.get(key)
            if raw is None:
                state = None
            elif hit is not None and hit[0] is raw:
                state = hit[1]
            else:
                state = KeyState.model_validate_json(raw)
            self.current[key] = state
        return self.current[key]

    def put(self, key: str, state: KeyState, event) -> None:
        self.current[key] = state
        self.changed[key] = event


def decode_input(message) -> Incident | TicketEvent | Sighting:
    if message.topic == topics.INCIDENTS:
        return Incident.model_validate_json(message.value)
    # soc.ticket-events carries the commands on tickets and the correlation cells' sightings.
    if message.value and SIGHTING_MARK in message.value:
        return Sighting.model_validate_json(message.value)
    return TicketEvent.model_validate_json(message.value)


def _decide_tickets(p: Pipeline):
    cache: dict[str, tuple[bytes, KeyState]] = {}
    in_order = faust_compat.InOrder(p.app, p.metrics)

    async def decide_tickets(stream):
        """Per batch: each input decided against its key's state in order; then one Redis round trip,
        one soc.tickets record per touched ticket, one table write per touched key, in that order:
        the table records what was done only after it was done."""
        for one in p.mirrors:  # never decide with half the silences or response levels
            await one.ready.wait()
        async for events in stream.take_events(BATCH, within=BATCH_WITHIN_S):
            # Each partition in offset order: the first ticket of a key is the first reading's (on a replay too).
            events = await in_order.admitted(events)
            states = States(p.dedup_key_to_tickets, cache)
            written: dict[str, tuple[Ticket, str]] = {}
            evicted: set[str] = set()
            counts: list[ticketing.Count] = []
            refused: list[tuple[str, str]] = []
            latencies: list[datetime] = []
            suppressed: list[ticketing.Suppressed] = []
            moved: dict[str, list[ResponseChange]] = {}
            sightings: list[Sighting] = []
            commands: list[tuple[str, TicketEvent]] = []
            around = ticketing.Around(p.silences.all(), p.response.by_key(), p.inhibitors.all())
            for event in events:
                message = event.message
                key = message.key.decode("utf-8", "replace") if message.key else ""
                try:
                    item = decode_input(message)
                    outcome = ticketing.step(p.config, states.get(key), item, key, around)
                    # The store's due index needs each ticket's next escalation time: a date past what
                    # datetime holds (an extension to the year 9999 from an older API) fails here, as this
                    # input's fault, not later in the batch's write, which would stop the partition.
                    for ticket in outcome.tickets:
                        escalation.next_due(p.config, ticket)
                except Exception as exc:  # bad input or a handler bug: dead-lettered, the partition goes on
                    reason = "invalid" if isinstance(exc, ValueError) else "handler_error"
                    if reason == "handler_error":
                        log.exception("ticket step failed", extra={"topic": message.topic, "offset": message.offset})
                    p.dead_letter(message.topic.removeprefix("soc."), message, Rejected(reason, f"{type(exc).__name__}: {str(exc)[:400]}"))
                    continue
                kind = item.action.value if isinstance(item, TicketEvent) else "incident"
                if outcome.verdict is Verdict.applied:
                    states.put(key, outcome.state, event)
                    counts += outcome.counts
                    if isinstance(item, Incident):
                        latencies.append(item.received_at)
                elif outcome.verdict is Verdict.refused:
                    _log_refused(item, outcome.reason)
                    if isinstance(item, TicketEvent) and item.actor != PIPELINE:
                        refused.append((item.event_id, outcome.reason))
                for ticket in outcome.tickets:
                    written[ticket.ticket_id] = (ticket, kind)
                sightings += outcome.sightings
                commands += outcome.commands
                evicted.update(outcome.evicted)
                suppressed += outcome.suppressed
                moved.update(outcome.response)
                if outcome.response:  # later inputs of this batch see the level it set
                    around = replace(around, response={**around.response, **outcome.response})
            tickets = [(t, kind, t.model_dump_json().encode()) for t, kind in written.values()]
            if tickets or evicted or suppressed:
                await p.store.save_with_retry(tickets, evicted=sorted(evicted - set(written)),
                                              suppressed=[(s.incident, s.silence_id, s.source_ticket_id) for s in suppressed])
            for ticket, _, js in tickets:
                p.ticket_topic.send_soon(key=ticket.ticket_id.encode(), value=js)
            # Tickets that inhibit others, and tombstones for those that left (streams/topology/mirror.py).
            for ticket, _, _ in tickets:
                if ticket.inhibits:
                    p.inhibitor_topic.send_soon(key=ticket.ticket_id.encode(),
                                                value=silence_rules.inhibitor_record(ticket).model_dump_json().encode())
            for ticket_id in evicted - set(written):
                p.inhibitor_topic.send_soon(key=ticket_id.encode(), value=None)
            # After the tickets they name are written; a lost send is sent again by the input's replay.
            for sighting in sightings:
                p.ticket_event_topic.send_soon(key=sighting.cell.encode(), value=sighting.model_dump_json().encode())
            for key, command in commands:
                p.send_command(command, key)
            for trigger, changes in moved.items():
                p.response_topic.send_soon(key=trigger.encode(), value=orjson.dumps(
                    [c.model_dump(mode="json") for c in changes]))
            for key, last_event in states.changed.items():
                value = states.current[key].model_dump_json().encode()
                with faust_compat.writing_for(stream, last_event):
                    p.dedup_key_to_tickets[key] = value
                cache[key] = (value, states.current[key])
            while len(cache) > PARSED_STATES:
                cache.pop(next(iter(cache)))
            for event_id, why in refused:
                await p.store.record_result(event_id, why)
            _count(p, counts, latencies)

    return decide_tickets


def _log_refused(item, reason: str) -> None:
    if isinstance(item, TicketEvent):
        level = log.debug if item.actor == PIPELINE else log.info
        level("ticket command not applied",
              extra={"ticket_id": item.ticket_id, "action": item.action.value, "why": reason})


def _count(p: Pipeline, counts: list[ticketing.Count], received: list[datetime]) -> None:
    m = p.metrics
    for count in counts:
        if isinstance(count, ticketing.Opened):
            m.tickets_opened.labels(count.department, count.severity.value).inc()
        elif isinstance(count, ticketing.Merged):
            m.duplicates.labels(count.source).inc()
        elif isinstance(count, ticketing.Silenced):
            m.incidents_silenced.labels(count.source).inc()
        elif isinstance(count, ticketing.Escalated):
            m.escalations.labels(count.department, count.step.value).inc()
            if count.step is Escalation.escalated:
                m.sla_breaches.labels(count.department, count.stage).inc()
    now = p.clock()
    for received_at in received:
        m.latency.observe(max((now - received_at).total_seconds(), 0.0))


# ------------------------------------------------------------------ soc.tickets -> the notifier's queues

def _notify_ticket_changes(p: Pipeline, notifier: Notifier):
    async def notify_ticket_changes(stream):
        """Per batch: the latest version of each ticket, its deliveries queued once (handlers.notify)."""
        async for events in stream.take_events(BATCH, within=BATCH_WITHIN_S):
            latest: dict[str, Ticket] = {}
            for event in events:
                message = event.message
                if message.value is None:
                    continue
                try:
                    ticket = Ticket.model_validate_json(message.value)
                except ValueError as exc:
                    p.dead_letter("tickets", message, Rejected("invalid", f"{type(exc).__name__}: {str(exc)[:400]}"))
                    continue
                # Each version's history holds every earlier one's: the newest is enough.
                if ticket.ticket_id not in latest or latest[ticket.ticket_id].version < ticket.version:
                    latest[ticket.ticket_id] = ticket
            await notifier.take(list(latest.values()))

    return notify_ticket_changes


# ------------------------------------------------------------------ timers (each guarded: health.guarded_timer)

async def escalate_overdue_tickets(p: Pipeline) -> None:
    """The tickets the due index says are due, in this worker's partitions only, each step once."""
    if p.app.rebalancing:
        return
    now = p.clock()
    sent = p.sent_steps
    due_now: set[str] = set()
    for ticket in await p.store.many(await p.store.due_ids(now)):
        if not p.owns(ticket.dedup_key):
            continue
        for step in escalation.due_steps(p.config, ticket, now):
            event = escalation.escalation_event(ticket, step, now)
            due_now.add(event.event_id)
            if sent.should_send(event.event_id, now):
                p.send_command(event, ticket.dedup_key)
    sent.keep_only(due_now)


async def respond_open_tickets(p: Pipeline) -> None:
    """Under a `retroactive` response level, the open tickets opened before it (owner partitions
    only) get its deadlines: each once, by the change that set the level. Reads the open tickets only
    while such a level is in force."""
    if p.app.rebalancing:
        return
    now = p.clock()
    in_force = response.in_force(p.response.by_key(), now, response.hold_of(p.config))
    wanted: set[str] = set()
    if in_force is not None and response.retroactive(p.config, in_force.level):
        for ticket in await p.store.many(await p.store.open_ids()):
            event = response.retroactive_event(p.config, ticket, in_force, now)
            if event is None or not p.owns(ticket.dedup_key):
                continue
            wanted.add(event.event_id + ticket.ticket_id)
            if p.sent_responses.should_send(event.event_id + ticket.ticket_id, now):
                p.send_command(event, ticket.dedup_key)
    p.sent_responses.keep_only(wanted)


async def watch_devices(p: Pipeline) -> None:
    """Devices silent past their heartbeat raise a *_device_offline incident, and devices offline that
    reported again send `recover` (owner partitions only; each incident and command is named by the
    silence, so any worker and any tick builds the same). Silence is judged against the newest heartbeat
    of the device's kind, not the clock: a worker catching up on a backlog after an outage sees its
    devices in step, not every one of them silent (a whole source gone quiet is SocSourceSilent's)."""
    if p.app.rebalancing:
        return
    rules = p.config.rules.heartbeats
    marks = await p.store.offline()
    for kind, rule in rules.kinds.items():
        newest = await p.store.newest_heard(kind)
        if newest is None:
            continue
        for device, last in await p.store.heard_before(kind, newest - rule.silent_after):
            if device in rules.retired:
                await p.store.forget_device(kind, device)
            elif marks.get((kind, device)) != last and (place := await p.store.place(kind, device)):
                incident = heartbeat.offline_incident(p.config, kind, device, *place, last)
                if p.owns(incident.dedup_key):
                    p.incident_topic.send_soon(key=incident.dedup_key.encode(),
                                               value=incident.model_dump_json().encode())
                    await p.store.mark_offline(kind, device, last)
    for (kind, device), last in marks.items():
        if heartbeat.tracked(p.config, kind, device) is None:
            await p.store.forget_device(kind, device)
            continue
        [heard] = await p.store.last_heard(kind, [device])
        if heard is None or heard <= last or not (place := await p.store.place(kind, device)):
            continue
        incident = heartbeat.offline_incident(p.config, kind, device, *place, last)
        if p.owns(incident.dedup_key):
            p.send_command(heartbeat.recover_event(incident, heard), incident.dedup_key)
            await p.store.unmark_offline(kind, device)
    silent = Counter(kind.split(".", 1)[0] for kind, _ in await p.store.offline())
    for source in heartbeat.OFFLINE:
        p.metrics.devices_silent.labels(source).set(silent.get(source, 0))


async def notice_all_clear(p: Pipeline) -> None:
    """A device whose readings stayed normal long enough after its last alarm sends `clear` to the
    ticket of that alarm's key (owner partitions only), once per alarm. Never closes anything."""
    if p.app.rebalancing or not p.config.rules.all_clear:
        return
    for kind, device, alarm_at, key, sent_for in await p.store.alarms():
        if sent_for == alarm_at or not key or not p.owns(key):
            continue
        event = heartbeat.all_clear_event(p.config, kind, key, alarm_at, await p.store.calm_since(kind, device, alarm_at))
        if event is not None:
            p.send_command(event, key)
            await p.store.mark_cleared(kind, device, alarm_at)


async def expire_closed_tickets(p: Pipeline) -> None:
    """Tickets closed past retention leave the table and the hot sets (owner partitions only)."""
    if p.app.rebalancing:
        return
    now = p.clock()
    retention = timedelta(days=p.settings.ticket_retention_days)
    for ticket in await p.store.many(await p.store.closed_before(now - retention)):
        event = ticketing.expire_event(ticket, retention, now)
        if event is not None and p.owns(ticket.dedup_key):
            p.send_command(event, ticket.dedup_key)
    await p.store.forget_silenced(now - retention)
    if p.notifier is not None:
        await p.notifier.store.trim(now)


async def refresh_gauges(p: Pipeline) -> None:
    """Open tickets and the departments' rates from the store's gauge facts, the same figures every worker sees;
    the response level from the table every worker holds."""
    now = p.clock()
    level = response.in_force(p.response.by_key(), now, response.hold_of(p.config))
    p.metrics.response_level.set(NUMBER[level.level] if level else 0)
    figures = performance.gauges(await p.store.gauge_facts(), now - PERFORMANCE_WINDOW, now, now,
                                 p.config.routing.followup.basically_satisfied_counts)
    p.metrics.tickets_open.clear()
    for (department, severity), count in figures.open_tickets.items():
        p.metrics.tickets_open.labels(department, severity).set(count)
    # Cleared like the open counts: a department with no figure now (its tickets left the window, or
    # none is due yet) must lose its series, not show its last ratio for ever. No await between the
    # clear and the sets, so no scrape sees the gauge half written.
    p.metrics.on_time_ratio.clear()
    p.metrics.department_ratio.clear()
    for department, rates in figures.rates.items():
        if rates["on_time_handling"] is not None:
            p.metrics.on_time_ratio.labels(department).set(rates["on_time_handling"])
        for rate, value in rates.items():
            if value is not None:
                p.metrics.department_ratio.labels(department, rate).set(value)
