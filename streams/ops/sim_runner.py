"""`soc simulate`'s publishing: the simulator's whitelist to soc.sites, then its events to the raw topics
as they fall due (or, given `rate`, the four-source mix at `rate` per second), with a progress line
every 10 s. Why it cannot start is raised (ConfigError, BadVolume, BrokerUnreachable), for the command
to tell the operator; the events themselves are `streams.ops.simulator`'s, which does no I/O."""
from __future__ import annotations

import signal
import sys
import threading
import time
from datetime import datetime, timezone
from typing import Any

from kafka import KafkaProducer
from kafka.errors import KafkaError

from schemas.config import load_config
from schemas.geo import load_map
from streams import topics
from streams.ops.simulator import SOURCES, Simulator, encode, record_key


class BadVolume(ValueError):
    """A rate or an intensity that is not a positive number (a usage error)."""


class BrokerUnreachable(ConnectionError):
    """No producer could be made for the configured brokers."""


def progress(sim: Simulator, sent: int, failed: int) -> str:
    per = ", ".join(f"{s} {sim.counts[s]}" for s in SOURCES)
    line = f"sent {sent} events ({per}), {sim.malformed} malformed"
    return line + (f", {failed} failed to send" if failed else "")


def run(settings: Any, rate: float | None = None, duration: float = 0, scenario: str = "normal",
        seed: int | None = None, intensity: float = 1.0) -> int:
    """Publish the whitelist, then for `duration` seconds (0: until Ctrl-C or SIGTERM) a sub-district's
    events as `Simulator.due` gives them, its report rates times `intensity`; or, given `rate`, the
    four-source mix of `Simulator.generate` at `rate` events a second. Returns how many events it sent.

    Raises BadVolume, ConfigError (the config directory or its map) or BrokerUnreachable before
    anything is sent."""
    if rate is not None and rate <= 0:
        raise BadVolume("--rate must be positive")
    if not intensity > 0:
        raise BadVolume("--intensity must be positive")
    config = load_config(settings.config_dir)
    layers = load_map(settings.config_dir, config)
    places = {sid: (lat, lon) for sid, (_, _, lat, lon) in (layers.stations() if layers else {}).items()}
    sim = Simulator(seed, scenario, config.district, places=places, intensity=intensity)
    try:
        producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all", linger_ms=5,
                                 **settings.kafka_client_kwargs())
    except Exception as exc:  # kafka-python raises several types when no broker answers
        raise BrokerUnreachable(f"cannot connect to Kafka at {settings.kafka_brokers}: "
                                f"{type(exc).__name__}: {exc}") from exc

    failures = [0]

    def on_error(_exc: BaseException) -> None:
        failures[0] += 1

    previous_term = None
    if threading.current_thread() is threading.main_thread():
        def on_term(_signum, _frame):
            raise KeyboardInterrupt
        previous_term = signal.signal(signal.SIGTERM, on_term)

    sent = 0
    try:
        sites = sim.whitelist(datetime.now(timezone.utc))
        for site in sites:
            producer.send(topics.SITES, key=site["site_id"].encode(), value=encode(site)).add_errback(on_error)
        producer.flush()
        print(f"published {len(sites)} site registrations to {topics.SITES}; "
              f"scenario {scenario}, "
              + (f"{rate:g} events/s" if rate else f"a sub-district's volumes times {intensity:g}")
              + (f" for {duration:g} s" if duration else " until Ctrl-C"), flush=True)

        tick = 0.1
        started = last = time.monotonic()
        next_report = started + 10
        tokens = 0.0
        while True:
            t = time.monotonic()
            if duration and t - started >= duration:
                break
            if rate:
                tokens = min(tokens + (t - last) * rate, max(rate, 1.0))
                n = int(tokens)
                tokens -= n
                events = sim.generate(datetime.now(timezone.utc), n) if n else []
            else:
                events = sim.due(datetime.now(timezone.utc))
            last = t
            for event in events:
                try:
                    producer.send(topics.RAW_TOPICS[event.source], value=encode(event.payload),
                                  key=record_key(event.payload)).add_errback(on_error)
                except KafkaError as exc:
                    failures[0] += 1
                    print(f"send failed: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                sent += 1
            if t >= next_report:
                print(progress(sim, sent, failures[0]), flush=True)
                next_report += 10
            time.sleep(max(0.0, tick - (time.monotonic() - t)))
    except KeyboardInterrupt:
        pass
    finally:
        if previous_term is not None:
            signal.signal(signal.SIGTERM, previous_term)
        try:
            producer.flush(timeout=10)
        except Exception as exc:
            print(f"flush failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        producer.close(timeout=10)
        print(progress(sim, sent, failures[0]), flush=True)
    return sent
