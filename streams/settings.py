"""Runtime settings from SOC_* environment variables."""
from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SOC_", extra="ignore")

    kafka_brokers: str = "127.0.0.1:9092"
    # Kafka transport security, the same for Faust (aiokafka) and kafka-python (admin, CLI producers,
    # rebuild): PLAINTEXT, SSL (TLS), SASL_PLAINTEXT or SASL_SSL (SASL over TLS, what production wants).
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "SCRAM-SHA-512"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    # CA bundle that signed the brokers' certificates (PEM); unset: the system's trust store.
    kafka_ssl_cafile: Path | None = None
    # Client certificate and key (PEM) for brokers that require mutual TLS; the key's password if any.
    kafka_ssl_certfile: Path | None = None
    kafka_ssl_keyfile: Path | None = None
    kafka_ssl_key_password: SecretStr | None = None
    kafka_ssl_check_hostname: bool = True
    # redis:// or rediss:// (TLS); a password goes in the URL (redis://:PASSWORD@host:6379/0, or
    # redis://USER:PASSWORD@... with ACLs) and TLS options in its query (?ssl_ca_certs=/path/ca.pem).
    # In k8s the whole URL comes from the Secret (deploy/k8s/deployment.yaml).
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
    # throughput and latency (the consumer thread polls less), docs/performance.md. Kafka answers a
    # fetch once data arrives, so there a longer wait costs nothing.
    fetch_max_wait_ms: int = 50
    # Faust's own per-event Prometheus sensors (faust_*): off by default, they cost throughput (docs/performance.md).
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
    # The DingTalk app whose interactive cards carry 签收/已知悉 (handlers/chat_cards.py, streams/http/chat.py):
    # its AppKey and AppSecret (for the access token that updates a card), and the callback's token and
    # 43-character aes_key. Unset, the card callback answers 404. Secrets: from the environment only.
    dingtalk_app_key: str | None = None
    dingtalk_app_secret: SecretStr | None = None
    dingtalk_callback_token: SecretStr | None = None
    dingtalk_callback_aes_key: SecretStr | None = None
    dingtalk_api_url: str = "https://api.dingtalk.com"
    # The WeCom self-built app (自建应用) whose template cards carry the buttons: corpid, the app's Secret and
    # AgentId, and its callback's Token and EncodingAESKey. Unset, the WeCom callback answers 404.
    wecom_corp_id: str | None = None
    wecom_corp_secret: SecretStr | None = None
    wecom_agent_id: int | None = None
    wecom_callback_token: SecretStr | None = None
    wecom_callback_aes_key: SecretStr | None = None
    wecom_api_url: str = "https://qyapi.weixin.qq.com"
    # The Feishu app (自建应用) whose message cards carry the buttons: App ID and App Secret, and its callback's
    # Verification Token and Encrypt Key. Unset, the Feishu callback answers 404.
    feishu_app_id: str | None = None
    feishu_app_secret: SecretStr | None = None
    feishu_verification_token: SecretStr | None = None
    feishu_encrypt_key: SecretStr | None = None
    feishu_api_url: str = "https://open.feishu.cn"
    # Each identity's request budget (a person, whichever session or token; a service credential; the
    # wall screen): a token bucket of api_burst that refills api_rate_per_s a second. A request costs 1,
    # and a listing 1 more for every api_rows_per_unit rows it asks for (limit=200: 11).
    api_rate_per_s: float = 20.0
    api_burst: float = 100.0
    api_rows_per_unit: int = Field(20, ge=1)
    # Sign-ins and refused credentials (tokens, sessions, feed tokens, Open311 keys) per client address:
    # a burst, then this many a second; once spent, the address's credentials are not even checked.
    # Beside district.yaml sign_in (per account and address), it slows one address trying many accounts.
    sign_in_rate_per_s: float = 1.0
    sign_in_burst: float = 30.0
    max_body_bytes: int = Field(16 * 1024, description="HTTP request body limit")

    @field_validator("kafka_sasl_username", "kafka_sasl_password", "kafka_ssl_cafile", "kafka_ssl_certfile",
                     "kafka_ssl_keyfile", "kafka_ssl_key_password", "dingtalk_app_key", "dingtalk_app_secret",
                     "dingtalk_callback_token", "dingtalk_callback_aes_key", "wecom_corp_id", "wecom_corp_secret",
                     "wecom_agent_id", "wecom_callback_token", "wecom_callback_aes_key", "feishu_app_id",
                     "feishu_app_secret", "feishu_verification_token", "feishu_encrypt_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value):
        # A Secret or env file with an empty key means "not set", not the path "." or an empty password.
        return None if value == "" else value

    @model_validator(mode="after")
    def _kafka_security_is_complete(self) -> "Settings":
        protocol = self.kafka_security_protocol
        if protocol.startswith("SASL_") and not (self.kafka_sasl_username and self.kafka_sasl_password
                                                  and self.kafka_sasl_password.get_secret_value()):
            raise ValueError(f"SOC_KAFKA_SECURITY_PROTOCOL={protocol} needs SOC_KAFKA_SASL_USERNAME and "
                             "SOC_KAFKA_SASL_PASSWORD")
        if not protocol.startswith("SASL_") and (self.kafka_sasl_username or self.kafka_sasl_password):
            raise ValueError("SOC_KAFKA_SASL_USERNAME/PASSWORD are set but SOC_KAFKA_SECURITY_PROTOCOL is "
                             f"{protocol}: set it to SASL_SSL (or SASL_PLAINTEXT)")
        tls_files = (self.kafka_ssl_cafile, self.kafka_ssl_certfile, self.kafka_ssl_keyfile)
        if not self.kafka_tls and any(tls_files):
            raise ValueError("SOC_KAFKA_SSL_* files are set but SOC_KAFKA_SECURITY_PROTOCOL is "
                             f"{protocol}: set it to SSL or SASL_SSL")
        if bool(self.kafka_ssl_certfile) != bool(self.kafka_ssl_keyfile):
            raise ValueError("SOC_KAFKA_SSL_CERTFILE and SOC_KAFKA_SSL_KEYFILE go together (mutual TLS)")
        return self

    @property
    def kafka_tls(self) -> bool:
        return self.kafka_security_protocol in ("SSL", "SASL_SSL")

    def kafka_ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context for Kafka (Faust/aiokafka take a context), or None without TLS."""
        if not self.kafka_tls:
            return None
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=str(self.kafka_ssl_cafile) if self.kafka_ssl_cafile else None)
        context.check_hostname = self.kafka_ssl_check_hostname
        if self.kafka_ssl_certfile:
            context.load_cert_chain(
                str(self.kafka_ssl_certfile), str(self.kafka_ssl_keyfile),
                self.kafka_ssl_key_password.get_secret_value() if self.kafka_ssl_key_password else None)
        return context

    def kafka_client_kwargs(self) -> dict[str, Any]:
        """Security keyword arguments for kafka-python's KafkaAdminClient, KafkaProducer and
        KafkaConsumer: `KafkaProducer(bootstrap_servers=..., **settings.kafka_client_kwargs())`.
        Empty for PLAINTEXT, so the embedded broker's clients are unchanged."""
        protocol = self.kafka_security_protocol
        if protocol == "PLAINTEXT":
            return {}
        kwargs: dict[str, Any] = {"security_protocol": protocol}
        if protocol.startswith("SASL_"):
            kwargs.update(sasl_mechanism=self.kafka_sasl_mechanism,
                          sasl_plain_username=self.kafka_sasl_username,
                          sasl_plain_password=self.kafka_sasl_password.get_secret_value())
        if self.kafka_tls:
            kwargs["ssl_check_hostname"] = self.kafka_ssl_check_hostname
            if self.kafka_ssl_cafile:
                kwargs["ssl_cafile"] = str(self.kafka_ssl_cafile)
            if self.kafka_ssl_certfile:
                kwargs.update(ssl_certfile=str(self.kafka_ssl_certfile), ssl_keyfile=str(self.kafka_ssl_keyfile))
                if self.kafka_ssl_key_password:
                    kwargs["ssl_password"] = self.kafka_ssl_key_password.get_secret_value()
        return kwargs

    def faust_broker_credentials(self):
        """`faust.App(..., broker_credentials=settings.faust_broker_credentials())`: a
        faust.SASLCredentials (with the TLS context for SASL_SSL), a faust.SSLCredentials for SSL,
        or None for PLAINTEXT (Faust's default)."""
        import faust

        protocol = self.kafka_security_protocol
        if protocol == "PLAINTEXT":
            return None
        if protocol == "SSL":
            return faust.SSLCredentials(self.kafka_ssl_context())
        return faust.SASLCredentials(username=self.kafka_sasl_username,
                                     password=self.kafka_sasl_password.get_secret_value(),
                                     ssl_context=self.kafka_ssl_context(), mechanism=self.kafka_sasl_mechanism)

    @property
    def redis_url_redacted(self) -> str:
        """The Redis URL without its password, for logs and messages."""
        parts = urlsplit(self.redis_url)
        if parts.password is None:
            return self.redis_url
        netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))

    @property
    def broker_url(self) -> str:
        return ";".join(f"kafka://{b.strip()}" for b in self.kafka_brokers.split(",") if b.strip())

    @property
    def bootstrap_servers(self) -> list[str]:
        return [b.strip() for b in self.kafka_brokers.split(",") if b.strip()]
