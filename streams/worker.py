"""What `soc worker` runs: the parts built from settings, then handed to the one factory."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

from schemas.config import load_config
from streams.clock import utc_now
from streams.metrics import Metrics
from streams.settings import Settings
from streams.store import TicketStore
from streams.topology.app import Pipeline, build_app


def assemble(settings: Settings) -> Pipeline:
    config = load_config(settings.config_dir)
    registry = CollectorRegistry()
    for collector in (ProcessCollector, GCCollector, PlatformCollector):
        collector(registry=registry)
    metrics = Metrics(registry, tuple(config.district.departments))
    store = TicketStore.from_url(settings.redis_url, settings.redis_prefix, config)
    return build_app(settings, config, store, utc_now, metrics, registry)
