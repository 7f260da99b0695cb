"""What `soc worker` runs: the parts built from settings, then handed to the one factory."""
from __future__ import annotations

import logging
import os

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

from handlers.notify import compile_rules
from schemas.config import load_config
from schemas.notify import load_notify
from streams.clock import utc_now
from streams.metrics import Metrics
from streams.settings import Settings
from streams.store import TicketStore
from streams.topology.app import build_app
from streams.topology.pipeline import Pipeline


# The pages' and the API's requests, and the board streams' one shared reader (streams/http/board_hub.py).
WEB_CONNECTIONS = 64


def assemble(settings: Settings) -> Pipeline:
    config = load_config(settings.config_dir)
    registry = CollectorRegistry()
    for collector in (ProcessCollector, GCCollector, PlatformCollector):
        collector(registry=registry)
    metrics = Metrics(registry, tuple(config.district.departments))
    store = TicketStore.from_url(settings.redis_url, settings.redis_prefix, config)
    # The pages and the API on connections of their own: 200 board streams once took the pipeline's.
    # Bounded: past it a request waits a moment for a connection, then answers 503; the pipeline's
    # connections are untouched.
    web_store = TicketStore.from_url(settings.redis_url, settings.redis_prefix, config, max_connections=WEB_CONNECTIONS)
    return build_app(settings, config, store, utc_now, metrics, registry, notify_rules(settings, config),
                     web_store=web_store)


def notify_rules(settings: Settings, config):
    """notify.yaml compiled with the URLs and secrets of the environment; None without the file."""
    notify = load_notify(settings.config_dir, config)
    if notify is None:
        return None
    rules = compile_rules(notify, config, os.environ, settings.public_url)
    if rules.unconfigured:
        logging.getLogger("soc.notify").warning(
            "notification channels without a URL in the environment: nothing is queued for them",
            extra={"channels": ", ".join(rules.unconfigured)})
    return rules
