"""Hop 1: soc.raw.<source> --parse_<source>--> soc.incidents. Each raw record parsed by handlers.intake
into an incident (or a dead letter), the devices heard recorded for the heartbeat and all-clear timers.
Beside it, the agents that check soc.sites and record soc.audit."""
from __future__ import annotations

import logging
import time

from redis.exceptions import RedisError

from handlers import heartbeat
from handlers.base import Context, Heard
from handlers.intake import Rejected, parsed
from schemas.accounts import AuditRecord
from schemas.raw import SiteRegistration
from streams import topics
from streams.accounts import AuditLog
from streams.store import until_written
from streams.topology import faust_compat
from streams.topology.outputs import Outputs
from streams.topology.pipeline import BATCH, BATCH_WITHIN_S, Pipeline, record_time
from streams.topology.watchdog import InOrder

log = logging.getLogger("soc.pipeline")

# After a failed heartbeat write, the parse agents go this long without them.
HEARD_PAUSE_S = 10.0


def add_parse_agents(p: Pipeline, agent) -> None:
    """parse_<source> for each raw topic, and check_sites; `agent` is the health's reporting_agent."""
    for source, topic in p.topics.raw.items():
        p.agents[f"parse_{source}"] = agent(topic, f"parse_{source}")(_parse_agent(p, source))
    p.agents["check_sites"] = agent(p.topics.sites, "check_sites")(_check_sites(p))


def add_audit_agent(p: Pipeline, agent) -> None:
    p.agents["record_audit"] = agent(p.topics.audit, "record_audit")(_record_audit(p))


def _parse_agent(p: Pipeline, source: str):
    async def parse(stream):
        for one in p.mirrors:  # the whitelist (and the rest) whole before the first event
            await one.ready.wait()
        paused_until = 0.0
        in_order = InOrder(p.app, p.metrics)
        # In offset order: incidents reach the ticket step in the order their readings came.
        async for events in faust_compat.finished_batches(stream, BATCH, BATCH_WITHIN_S, in_order):
            out = Outputs(p.app.producer)
            p.metrics.events.labels(source).inc(len(events))
            heard: list[Heard] = []  # every one: the all-clear counts readings, not just the latest
            for event in events:
                message = event.message
                ctx = Context(p.config, record_time(message, p.clock), p.books.sites)
                try:
                    incident, alive = parsed(source, message.value, ctx)
                except Rejected as rejected:
                    await p.dead_letter(source, message, rejected, out)
                    continue
                except Exception as exc:  # a handler bug must not stop the partition
                    log.exception("handler failed", extra={"source": source, "offset": message.offset})
                    await p.dead_letter(source, message, Rejected("handler_error", f"{type(exc).__name__}: {exc}"), out)
                    continue
                if alive is not None and (heartbeat.tracked(p.config, alive.kind, alive.device)
                                          or alive.kind in p.config.rules.all_clear):
                    heard.append(alive)
                if incident is None:
                    continue
                p.metrics.incidents.labels(source, incident.category.value, incident.severity.value).inc()
                await out.send(topics.INCIDENTS, incident.dedup_key.encode(), incident.model_dump_json().encode())
            # Heartbeats are advisory: while Redis fails, parsing goes on without them rather than waiting
            # out a socket timeout per batch (a device's next report after Redis is back makes it up).
            if heard and time.monotonic() >= paused_until:
                try:
                    await p.store.record_heard(heard)
                except (RedisError, OSError) as exc:
                    paused_until = time.monotonic() + HEARD_PAUSE_S
                    log.warning("heartbeats not recorded; retrying in a while",
                                extra={"source": source, "readings": len(heard), "error": str(exc)})
            await out.acknowledged()

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
                out = Outputs(p.app.producer)
                await p.dead_letter("sites", message, Rejected("invalid", str(exc)[:500]), out)
                await out.acknowledged()

    return check_sites


def _record_audit(p: Pipeline):
    audit_log = AuditLog(p.store.redis, p.store.prefix)

    async def record_audit(stream):
        """soc.audit into Redis for GET /api/audit, in batches; a record that is not one is dead-lettered."""
        async for events in faust_compat.finished_batches(stream, 500, 0.5):
            good, out = [], Outputs(p.app.producer)
            for event in events:
                message = event.message
                try:
                    good.append((message.value, AuditRecord.model_validate_json(message.value or b"").at))
                except ValueError as exc:
                    await p.dead_letter("audit", message, Rejected("invalid", str(exc)[:500]), out)
            if good:
                await until_written(lambda: audit_log.record(good))
            await out.acknowledged()

    return record_audit
