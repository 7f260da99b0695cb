"""The Faust app: topics, tables and agents. Agents only loop, call handlers and emit."""
from __future__ import annotations

import logging
from collections import OrderedDict
from datetime import timedelta
from time import monotonic

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
from streams import faust_fixes, topics
from streams.clock import utc_now
from streams.logs import logging_config
from streams.metrics import Metrics
from streams.settings import Settings
from streams.sites import Whitelist
from streams.stalls import StallDetector
from streams.store import TicketStore

log = logging.getLogger("soc.pipeline")

# The window the on-time gauge covers (the API takes any window).
PERFORMANCE_WINDOW = timedelta(days=30)
# Ticket events applied per batch (one Redis round trip per batch), and how long a batch waits to fill.
APPLY_BATCH = 500
APPLY_WITHIN_S = 0.002
# Parsed tickets kept by id, so a hot ticket (a flood station in a storm) is not re-validated per event.
PARSED_TICKETS = 4096


# The topics agents read. The assignment also holds the changelogs, which are read only while
# recovering tables: they always look behind and must never be sought.
AGENT_TOPICS = frozenset({*topics.RAW_TOPICS.values(), topics.SITES, topics.INCIDENTS, topics.TICKET_EVENTS})

settings = Settings()
faust_fixes.cap_fetch_wait(settings.fetch_max_wait_ms)
faust_fixes.drop_acks_from_earlier_assignments()
faust_fixes.commit_only_what_was_processed(AGENT_TOPICS - {topics.SITES})  # soc.sites is compacted

config = load_config(settings.config_dir)
registry = CollectorRegistry()
for collector in (ProcessCollector, GCCollector, PlatformCollector):
    collector(registry=registry)
metrics = Metrics(registry, tuple(config.district.departments))
store = TicketStore.from_url(settings.redis_url, settings.redis_prefix, config)

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
    # Measured in bench/README.md: 5 ms linger and 256 KiB batches cut produce requests (Tansu
    # spends more per request than per byte) for no measurable latency cost at 300 events/s.
    producer_linger_ms=5,
    producer_max_batch_size=256 * 1024,
    stream_buffer_maxsize=8192,
    broker_max_poll_records=2000,
    broker_commit_every=10_000,
    broker_commit_interval=2.0,
    table_standby_replicas=0,
    # The check guards RocksDB files against a truncated changelog. With the memory store it only
    # fires when a partition stays with this worker across a rebalance while its last changelog
    # writes are still in flight (offset written 17 > highwater read 16, seen in the rebalance
    # test), and then crashes the worker over data it holds itself.
    recovery_consistency_check=False,
    web_in_thread=False,
    logging_config=logging_config(settings.log_level),
)
if settings.faust_sensors:
    setup_prometheus_sensors(app, pattern="/metrics", registry=registry, name_prefix="faust")


def _raw_topic(name: str, **kw) -> faust.TopicT:
    return app.topic(name, key_serializer="raw", value_serializer="raw", **kw)


raw_topics = {source: _raw_topic(name) for source, name in topics.RAW_TOPICS.items()}
sites_topic = _raw_topic(topics.SITES, partitions=1)
incident_topic = _raw_topic(topics.INCIDENTS)
ticket_topic = _raw_topic(topics.TICKETS)
ticket_event_topic = _raw_topic(topics.TICKET_EVENTS)
deadletter_topic = _raw_topic(topics.DEADLETTER)

# Values are JSON bytes, not dicts: a third of the memory per ticket, and the changelog sends them
# as they are instead of serializing again (bench/README.md).
dedup_key_to_ticket = app.Table("dedup_key_to_ticket", default=None, partitions=settings.partitions,
                                value_type=bytes)
ticket_id_to_ticket = app.Table("ticket_id_to_ticket", default=None, partitions=settings.partitions,
                                value_type=bytes)
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
        decision = triage(config, dedup.DedupEntry.model_validate_json(known) if known else None, incident, utc_now())
        dedup_key_to_ticket[incident.dedup_key] = decision.entry.model_dump_json().encode()
        await ticket_event_topic.send(key=decision.event.ticket_id.encode(),
                                      value=decision.event.model_dump_json().encode())


@app.agent(ticket_event_topic)
async def apply_ticket_events(stream):
    """Ticket events in batches: each applied in order against the table, then one Redis round trip
    for the batch's writes, then the soc.tickets sends. Offsets are acked after the batch."""
    async for events in stream.take_events(APPLY_BATCH, within=APPLY_WITHIN_S):
        writes: list[tuple[Ticket, TicketEvent, bytes]] = []
        rewrites: list[tuple[Ticket, TicketEvent, bytes]] = []
        for event in events:
            # Table writes find their partition through the current event (take_events sets none).
            stream._set_current_event(event)
            ticket_event = TicketEvent.model_validate_json(event.message.value)
            outcome = lifecycle.apply(config, _current_ticket(ticket_event.ticket_id), ticket_event, utc_now())
            if outcome.rejected:
                (log.debug if ticket_event.actor == PIPELINE else log.info)(
                    "ticket event not applied", extra={"ticket_id": ticket_event.ticket_id,
                                                       "action": ticket_event.action.value, "why": outcome.rejected})
                if ticket_event.actor != PIPELINE:
                    await store.record_result(ticket_event.event_id, outcome.rejected)
            if outcome.ticket is not None:
                writes.append((outcome.ticket, ticket_event, _remember(outcome.ticket)))
            elif outcome.replayed is not None:
                rewrites.append((outcome.replayed, ticket_event, ticket_id_to_ticket[outcome.replayed.ticket_id]))
            for follow_up in outcome.follow_ups:
                await ticket_event_topic.send(key=follow_up.ticket_id.encode(),
                                              value=follow_up.model_dump_json().encode())
        if writes or rewrites:
            # Rewrites go first: a batch may replay an event and then apply newer ones to the ticket.
            await store.save_with_retry([(ticket, cause.action.value, js) for ticket, cause, js in rewrites + writes])
            for ticket, cause, js in rewrites + writes:
                await ticket_topic.send(key=ticket.ticket_id.encode(), value=js)
            for ticket, cause, _ in writes:
                _count(ticket, cause)


_parsed: OrderedDict[str, tuple[bytes, Ticket]] = OrderedDict()


def _current_ticket(ticket_id: str) -> Ticket | None:
    """The table's ticket, parsed once per version: the cache holds the table value it came from."""
    known = ticket_id_to_ticket.get(ticket_id)
    if not known:
        return None
    hit = _parsed.get(ticket_id)
    if hit is not None and hit[0] is known:
        _parsed.move_to_end(ticket_id)
        return hit[1]
    ticket = Ticket.model_validate_json(known)
    _cache(ticket_id, known, ticket)
    return ticket


def _cache(ticket_id: str, value: bytes, ticket: Ticket) -> None:
    _parsed[ticket_id] = (value, ticket)
    _parsed.move_to_end(ticket_id)
    if len(_parsed) > PARSED_TICKETS:
        _parsed.popitem(last=False)


def _remember(ticket: Ticket) -> bytes:
    """Store the ticket in the table; the same JSON goes to Redis and soc.tickets."""
    value = ticket.model_dump_json().encode()
    ticket_id_to_ticket[ticket.ticket_id] = value
    _cache(ticket.ticket_id, value, ticket)
    return value


def _count(ticket: Ticket, cause: TicketEvent) -> None:
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
    # DEBUG: one line per ticket write cost 12% of throughput at INFO (bench/README.md).
    log.debug("ticket written", extra={"ticket_id": ticket.ticket_id, "incident_id": ticket.incident_id,
                                       "action": cause.action.value, "department": ticket.department,
                                       "severity": ticket.severity.value, "version": ticket.version})


@app.timer(settings.escalation_interval_s)
async def escalate_overdue_tickets() -> None:
    """Every worker reads the tickets the due index says are due; the owning partition applies each
    step once."""
    if app.rebalancing:
        return
    now = utc_now()
    try:
        tickets = await store.many(await store.due_ids(now))
    except Exception as exc:  # Redis down: the next tick tries again
        log.warning("escalation scan skipped", extra={"error": type(exc).__name__})
        return
    for ticket in tickets:
        for step in escalation.due_steps(config, ticket, now):
            event = escalation.escalation_event(ticket, step, now)
            await ticket_event_topic.send(key=ticket.ticket_id.encode(), value=event.model_dump_json().encode())


@app.timer(settings.gauges_interval_s)
async def refresh_gauges() -> None:
    """Open tickets and on-time ratios from the store's gauge facts, the same figures every worker sees."""
    now = utc_now()
    try:
        figures = performance.gauges(await store.gauge_facts(), now - PERFORMANCE_WINDOW, now, now)
    except Exception as exc:
        log.warning("gauge refresh skipped", extra={"error": type(exc).__name__})
        return
    metrics.tickets_open.clear()
    for (department, severity), count in figures.open_tickets.items():
        metrics.tickets_open.labels(department, severity).set(count)
    for department, ratio in figures.on_time_handling.items():
        if ratio is not None:
            metrics.on_time_ratio.labels(department).set(ratio)


# A partition counts as stalled after this long with records waiting and nothing in flight (streams/stalls.py).
STALL_AFTER_S = 15.0
stalls = StallDetector(STALL_AFTER_S)


@app.timer(5.0)
async def watch_partitions() -> None:
    """Consumer lag per assigned partition. A partition that stopped delivering, or whose commit is
    held at a record Faust skipped, is read again from its committed offset: the records Faust
    dropped come back (every stage is idempotent on replays)."""
    consumer = app.consumer
    metrics.consumer_lag.clear()
    if app.rebalancing:
        return
    assigned = [tp for tp in consumer.assignment() if tp.topic in AGENT_TOPICS]
    in_flight = {message.tp for message in list(consumer._unacked_messages)}  # Faust: no public accessor
    now = monotonic()
    positions = {}
    for tp in assigned:
        if consumer._committed_offset.get(tp) is None:
            # Nothing committed yet: where reading started, so the commit can check for holes from there.
            consumer._committed_offset[tp] = await _committed_on_broker(tp)
        read = consumer._read_offset.get(tp)  # Faust keeps no public accessor for it
        # Faust leaves the read offset unset after an assignment until a record arrives; the
        # committed offset is then the next one due.
        positions[tp] = read + 1 if read is not None else (consumer._committed_offset.get(tp) or 0)
    stalls.progress(sum(positions.values()), now)
    for tp, next_offset in positions.items():
        end = consumer.highwater(tp)
        if end is None:
            continue
        if end < next_offset:
            # The log ends before where this consumer stands: the broker lost it (Tansu restarted
            # empty; on Kafka, a topic recreated). Faust's offsets for it are stale: start over.
            restart_at = await _committed_on_broker(tp)
            for offsets in (consumer._acked, consumer._acked_index, consumer._gap):
                offsets.pop(tp, None)
            consumer._committed_offset[tp] = restart_at
            await _read_again(tp, restart_at, "log end below the consumer's position: reading again",
                              next_offset=next_offset, end=end)
            continue
        metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(end - next_offset, 0))
        # Acks past a missing record hold the commit at the hole (faust_fixes): read it again.
        acked = consumer._acked.get(tp)
        committed = consumer._committed_offset.get(tp)
        if acked and committed is not None and stalls.stalled(("hole", tp), committed, min(acked), tp in in_flight, now):
            await _read_again(tp, committed, "records skipped by the consumer: reading again from the committed offset",
                              first_acked=min(acked))
            continue
        if stalls.stalled(tp, next_offset, end, tp in in_flight, now) and stalls.idle(now):
            await _read_again(tp, await _committed_on_broker(tp), "partition stalled: reading again from the committed offset",
                              next_offset=next_offset, end=end)
    stalls.keep_only([*assigned, *(("hole", tp) for tp in assigned)])


async def _read_again(tp, offset: int, why: str, **seen: int) -> None:
    """Seek `tp` back to `offset`, with a warning and a count: the watchdog's one repair."""
    log.warning(why, extra={"topic": tp.topic, "partition": tp.partition, "restart_at": offset, **seen})
    metrics.partition_stalls.labels(tp.topic).inc()
    await app.consumer.seek(tp, offset)


async def _committed_on_broker(tp) -> int:
    """The group's committed offset as the broker has it, else the earliest one (auto.offset.reset).
    Not Faust's own record of it, which a broker that lost its state (Tansu restarted) leaves stale."""
    thread = app.consumer._thread  # Faust exposes the aiokafka consumer only through its thread
    client = thread._ensure_consumer()
    committed = await thread.call_thread(client.committed, tp)
    if committed is not None and committed >= 0:
        return committed
    return (await thread.call_thread(client.beginning_offsets, [tp]))[tp]


# Views register themselves on the app.
from streams import api, board, web  # noqa: E402,F401
