"""Runtime settings from SOC_* environment variables."""
from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SOC_", extra="ignore")

    kafka_brokers: str = "127.0.0.1:9092"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Every Redis key starts with this, so several stacks can share one Redis.
    redis_prefix: str = "soc"
    config_dir: Path = REPO_ROOT / "deploy" / "config"
    web_port: int = 6066
    web_host: str = "127.0.0.1"
    app_id: str = "soc-pipeline"
    data_dir: Path = Path("/tmp/soc-data")
    partitions: int = 8
    replication_factor: int = 1
    kafka_acks: str = "all"
    log_level: str = "info"
    # Consumer group membership: short enough that a dead worker's partitions move in ~15 s.
    session_timeout_s: float = 15.0
    heartbeat_interval_s: float = 3.0
    rebalance_timeout_s: float = 30.0
    # Longest a consumer fetch waits on the broker. Faust's 1,500 ms costs Tansu, which holds a fetch
    # over several partitions for most of the wait, up to 1.5 s per hop; 50 ms beat 10 ms in both
    # throughput and latency (the consumer thread polls less), bench/README.md. Kafka answers a
    # fetch once data arrives, so there a longer wait costs nothing.
    fetch_max_wait_ms: int = 50
    # Faust's own per-event Prometheus sensors (faust_*): off by default, they cost throughput (bench/README.md).
    faust_sensors: bool = False
    escalation_interval_s: float = 5.0
    gauges_interval_s: float = 15.0
    # Closed tickets stay in the ticket table and Redis's hot sets this long, then only on soc.tickets
    # and by id in Redis (the retention sweep runs every retention_interval_s).
    ticket_retention_days: float = 30.0
    retention_interval_s: float = 60.0
    # The base of the inbox links in notifications (the address people open, behind any proxy).
    public_url: str = "http://127.0.0.1:6066"
    # How often the notifier looks for deliveries that are ready.
    notify_interval_s: float = 0.5
    api_rate_per_s: float = 20.0
    api_burst: float = 100.0
    max_body_bytes: int = Field(16 * 1024, description="HTTP request body limit")

    @property
    def broker_url(self) -> str:
        return ";".join(f"kafka://{b.strip()}" for b in self.kafka_brokers.split(",") if b.strip())

    @property
    def bootstrap_servers(self) -> list[str]:
        return [b.strip() for b in self.kafka_brokers.split(",") if b.strip()]
