"""The Faust app of one worker: its settings, and the compatibility patches applied for it
(streams/topology/faust_compat/)."""
from __future__ import annotations

import faust
from faust.sensors.prometheus import setup_prometheus_sensors
from prometheus_client import CollectorRegistry

from streams.logs import logging_config
from streams.settings import Settings
from streams.topology import faust_compat


def faust_app(settings: Settings, registry: CollectorRegistry, gapless_topics: frozenset[str]) -> faust.App:
    """gapless_topics: the inputs whose every offset is a record (faust_compat.commit_only_what_was_processed)."""
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
        # Measured (docs/performance.md): 5 ms linger and 256 KiB batches cut produce requests (Tansu
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
    faust_compat.apply_fixes(app, settings.fetch_max_wait_ms, gapless_topics)
    if settings.faust_sensors:
        setup_prometheus_sensors(app, pattern="/metrics", registry=registry, name_prefix="faust")
    return app
