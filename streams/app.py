"""The Faust app: topics, tables and agents. Agents only loop, call handlers and emit."""
from __future__ import annotations

import logging
from datetime import timedelta

import faust
from faust.sensors.prometheus import setup_prometheus_sensors
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

from handlers import dedup, escalation, lifecycle, performance
from handlers.base import Context
from handlers.intake import Rejected, dead_letter, to_incident
from handlers.tickets import PIPELINE
from handlers.triage import triage
from schemas.config import load_config
from schemas.enums import Escalation
from schemas.raw import SiteRegistration
from schemas.records import Incident, Ticket, TicketAction, TicketEvent
from streams import topics
from streams.clock import utc_now
from streams.logs import logging_config
from streams.metrics import Metrics
from streams.settings import Settings
from streams.sites import Whitelist
from streams.store import TicketStore

log = logging.getLogger("soc.pipeline")

# The window the on-time gauge covers (the API takes any window).
PERFORMANCE_WINDOW = timedelta(days=30)

settings = Settings()
config = load_config(settings.config_dir)
registry = CollectorRegistry()
for collector in (ProcessCollector, GCCollector, PlatformCollector):
    collector(registry=registry)
metrics = Metrics(registry, tuple(config.district.departments))
store = TicketStore.from_url(settings.redis_url, settings.redis_prefix)

(settings.data_dir / settings.app_id).mkdir(parents=True, exist_ok=True)
app = faust.App(
    settings.app_id,
    broker=settings.broker_url,
    store="memory://",
    datadir=str(settings.data_dir / settings.app_id / "faust"),
    web_host=settings.web_host,
    web_port=settings.web_port,
    topic_partitions=settings.partitions,
    topic_replication_factor=settings.replication_factor,
    topic_allow_declare=True,
    producer_acks=-1 if settings.kafka_acks == "all" else int(settings.kafka_acks),
    broker_session_timeout=settings.session_timeout_s,
    broker_heartbeat_interval=settings.heartbeat_interval_s,
    broker_rebalance_timeout=settings.rebalance_timeout_s,
    # Latency over batching: a red flood alert should not wait for a batch to fill.
    producer_linger_ms=1,
    stream_buffer_maxsize=4096,
    broker_max_poll_records=500,
    broker_commit_every=1000,
    broker_commit_interval=1.0,
    table_standby_replicas=0,
    web_in_thread=False,
    logging_config=logging_config(settings.log_level),
)
setup_prometheus_sensors(app, pattern="/metrics", registry=registry, name_prefix="faust")


def _raw_topic(name: str, **kw) -> faust.TopicT:
    return app.topic(name, key_serializer="raw", value_serializer="raw", **kw)


raw_topics = {source: _raw_topic(name) for source, name in topics.RAW_TOPICS.items()}
sites_topic = _raw_topic(topics.SITES, partitions=1)
incident_topic = _raw_topic(topics.INCIDENTS)
ticket_topic = _raw_topic(topics.TICKETS)
ticket_event_topic = _raw_topic(topics.TICKET_EVENTS)
deadletter_topic = _raw_topic(topics.DEADLETTER)

dedup_key_to_ticket = app.Table("dedup_key_to_ticket", default=None, partitions=settings.partitions)
ticket_id_to_ticket = app.Table("ticket_id_to_ticket", default=None, partitions=settings.partitions)
site_id_to_registration = app.GlobalTable("site_id_to_registration", default=None, partitions=1)
whitelist = Whitelist(site_id_to_registration)


def _text(key: bytes | None) -> str:
    return key.decode("utf-8", "replace") if key else ""


async def _reject(source: str, message, rejected: Rejected) -> None:
    metrics.rejected.labels(source, rejected.reason).inc()
    record = dead_letter(message.topic, message.partition, message.offset, message.value, rejected, utc_now())
    log.warning("dead-lettered", extra={"source": source, "topic": message.topic, "partition": message.partition,
                                        "offset": message.offset, "reason": rejected.reason})
    await deadletter_topic.send(key=message.topic.encode(), value=record.model_dump_json().encode())


def _parse_agent(source: str):
    async def parse(stream):
        async for event in stream.events():
            message = event.message
            metrics.events.labels(source).inc()
            try:
                incident = to_incident(source, message.value, Context(config, utc_now(), whitelist))
            except Rejected as rejected:
                await _reject(source, message, rejected)
                continue
            except Exception as exc:  # a handler bug must not stop the partition
                log.exception("handler failed", extra={"source": source, "offset": message.offset})
                await _reject(source, message, Rejected("handler_error", f"{type(exc).__name__}: {exc}"))
                continue
            if incident is None:
                continue
            metrics.incidents.labels(source, incident.category.value, incident.severity.value).inc()
            await incident_topic.send(key=incident.dedup_key.encode(), value=incident.model_dump_json().encode())

    parse.__name__ = parse.__qualname__ = f"parse_{source}"
    return app.agent(raw_topics[source], name=f"parse_{source}")(parse)


parse_agents = {source: _parse_agent(source) for source in raw_topics}


@app.agent(sites_topic)
async def register_sites(stream):
    async for event in stream.events():
        message = event.message
        site_id = _text(message.key)
        if message.value is None:
            site_id_to_registration.pop(site_id, None)
            continue
        try:
            site = SiteRegistration.model_validate_json(message.value)
        except Exception as exc:
            await _reject("sites", message, Rejected("invalid", str(exc)[:500]))
            continue
        site_id_to_registration[site.site_id] = site.model_dump(mode="json")


@app.agent(incident_topic)
async def triage_incidents(stream):
    async for event in stream.events():
        incident = Incident.model_validate_json(event.message.value)
        known = dedup_key_to_ticket.get(incident.dedup_key)
        decision = triage(config, dedup.DedupEntry.model_validate(known) if known else None, incident, utc_now())
        dedup_key_to_ticket[incident.dedup_key] = decision.entry.model_dump(mode="json")
        await ticket_event_topic.send(key=decision.event.ticket_id.encode(),
                                      value=decision.event.model_dump_json().encode())


@app.agent(ticket_event_topic)
async def apply_ticket_events(stream):
    async for event in stream.events():
        ticket_event = TicketEvent.model_validate_json(event.message.value)
        known = ticket_id_to_ticket.get(ticket_event.ticket_id)
        current = Ticket.model_validate(known) if known else None
        outcome = lifecycle.apply(config, current, ticket_event, utc_now())
        if outcome.rejected:
            log.info("ticket event not applied", extra={"ticket_id": ticket_event.ticket_id,
                                                        "action": ticket_event.action.value,
                                                        "why": outcome.rejected})
            if ticket_event.actor != PIPELINE:
                await store.record_result(ticket_event.event_id, outcome.rejected)
        if outcome.ticket is not None:
            await _publish(outcome.ticket, ticket_event, current)
        for follow_up in outcome.follow_ups:
            await ticket_event_topic.send(key=follow_up.ticket_id.encode(), value=follow_up.model_dump_json().encode())


async def _publish(ticket: Ticket, cause: TicketEvent, before: Ticket | None) -> None:
    ticket_id_to_ticket[ticket.ticket_id] = ticket.model_dump(mode="json")
    await store.save_with_retry([(ticket, cause.action.value)])
    await ticket_topic.send(key=ticket.ticket_id.encode(), value=ticket.model_dump_json().encode())
    if cause.action is TicketAction.open:
        metrics.tickets_opened.labels(ticket.department, ticket.severity.value).inc()
    elif cause.action is TicketAction.escalate:
        stage, step = cause.note.split(":")  # escalation_event writes "stage:step"
        metrics.escalations.labels(ticket.department, step).inc()
        if step == Escalation.escalated.value:
            metrics.sla_breaches.labels(ticket.department, stage).inc()
    elif cause.action is TicketAction.occurrence:
        metrics.duplicates.labels(ticket.source.value).inc()
    if cause.incident is not None:
        metrics.latency.observe(max((utc_now() - cause.incident.received_at).total_seconds(), 0.0))
    log.info("ticket written", extra={"ticket_id": ticket.ticket_id, "incident_id": ticket.incident_id,
                                      "action": cause.action.value, "department": ticket.department,
                                      "severity": ticket.severity.value, "version": ticket.version})


@app.timer(settings.escalation_interval_s)
async def escalate_overdue_tickets() -> None:
    """Every worker looks at every open ticket; the owning partition applies each step once."""
    if app.rebalancing:
        return
    now = utc_now()
    try:
        tickets = await store.many(await store.ids(None))
    except Exception as exc:  # Redis down: the next tick tries again
        log.warning("escalation scan skipped", extra={"error": type(exc).__name__})
        return
    for ticket in tickets:
        for step in escalation.due_steps(config, ticket, now):
            event = escalation.escalation_event(ticket, step, now)
            await ticket_event_topic.send(key=ticket.ticket_id.encode(), value=event.model_dump_json().encode())


@app.timer(settings.gauges_interval_s)
async def refresh_gauges() -> None:
    """Open tickets and on-time ratios from the Redis projection, the same figures every worker sees."""
    now = utc_now()
    try:
        tickets = await store.many(await store.ids(None))
    except Exception as exc:
        log.warning("gauge refresh skipped", extra={"error": type(exc).__name__})
        return
    open_counts: dict[tuple[str, str], int] = {}
    for ticket in tickets:
        if ticket.is_open:
            key = (ticket.department, ticket.severity.value)
            open_counts[key] = open_counts.get(key, 0) + 1
    metrics.tickets_open.clear()
    for (department, severity), count in open_counts.items():
        metrics.tickets_open.labels(department, severity).set(count)
    for department, row in performance.rows(tickets, now - PERFORMANCE_WINDOW, now, now).items():
        ratio = row.rates["on_time_handling"]
        if ratio is not None:
            metrics.on_time_ratio.labels(department).set(ratio)


@app.timer(5.0)
async def measure_consumer_lag() -> None:
    """Messages between what this worker has read and the log end, per assigned partition."""
    consumer = app.consumer
    metrics.consumer_lag.clear()
    for tp in consumer.assignment():
        end = consumer.highwater(tp)
        read = consumer._read_offset.get(tp)  # Faust keeps no public accessor for it
        if end is None:
            continue
        lag = end - (read + 1 if read is not None else 0)
        metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(lag, 0))


# Views register themselves on the app.
from streams import api, board, web  # noqa: E402,F401
