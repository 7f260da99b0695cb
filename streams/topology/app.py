"""The Faust topology, built by one factory: two hops, each over batches.

    soc.raw.<source> --parse_<source>--> soc.incidents ─┐  (keyed by dedup key, co-partitioned)
                                         soc.ticket-events ─┴--decide_tickets--> dedup_key_to_tickets
                                                                    └-> Redis, soc.tickets
    soc.tickets --notify_ticket_changes--> the notifier's queues --send_notifications--> channels (notifier.py)

Agents only loop over batches, call handlers (handlers.intake, handlers.ticketing) and execute the
typed outcomes; every decision is a plain function a unit test can call without a broker.
Importing this module builds nothing: `build_app` does, from what it is given. Its parts:
settings.py (the Faust app and its patches), pipeline.py (what they share), hop1.py (parse),
hop2.py (decide), sweeps.py (the timers), notifying.py (the notifier), and streams/http (the views).
"""
from __future__ import annotations

from prometheus_client import CollectorRegistry

from handlers import notify
from schemas.config import Config
from streams.http import register as register_views
from streams.metrics import Metrics
from streams.settings import Settings
from streams.store import TicketStore
from streams.topology import awaiting, hop1, hop2, notifying, sweeps
from streams.topology.pipeline import AGENT_TOPICS, COMPACTED_INPUTS, Clock, Pipeline, assemble
from streams.topology.settings import faust_app
from streams.topology.watchdog import PartitionWatchdog


def build_app(settings: Settings, config: Config, store: TicketStore, clock: Clock, metrics: Metrics,
              registry: CollectorRegistry, notify_rules: notify.Rules | None = None,
              web_store: TicketStore | None = None) -> Pipeline:
    """notify_rules: notify.yaml compiled (handlers.notify.compile_rules); None notifies nobody.
    web_store: the store the HTTP views read, on connections of its own (None: `store`'s)."""
    app = faust_app(settings, registry, gapless_topics=AGENT_TOPICS - COMPACTED_INPUTS)
    p = assemble(app, settings, config, store, clock, metrics, registry, web_store or store)
    agent = p.health.reporting_agent(app)
    timer = p.health.guarded_timer(app, metrics)

    hop1.add_parse_agents(p, agent)  # soc.raw.<source> -> soc.incidents; soc.sites checked
    for one in p.mirrors:  # the topics every worker reads whole
        app.task(p.health.reporting_task(f"mirror {one.topic}", one.run))
    hop2.add_decide_agent(p, agent)  # soc.incidents | soc.ticket-events -> the table, Redis, soc.tickets
    hop1.add_audit_agent(p, agent)  # soc.audit -> Redis

    sweeps.add_timers(p, timer)  # escalation, response levels, plans, devices, retention, gauges
    watchdog = PartitionWatchdog(app, metrics, AGENT_TOPICS)
    timer(watchdog.interval_s, "watch_partitions")(watchdog.look)
    app.task(awaiting.log_on_sigusr1(app))  # kill -USR1: what each task awaits, in the log

    if notify_rules is not None and notify_rules.channels:
        notifying.add_notifier(p, notify_rules, agent, timer)  # soc.tickets -> the channels

    register_views(p)  # the views receive the pipeline; they import nothing of it
    return p
