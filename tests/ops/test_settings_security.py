"""Kafka TLS/SASL and Redis credentials at the settings level.

No SASL or TLS Kafka broker is available on this machine (the embedded Tansu broker speaks
PLAINTEXT only), so these build every client the code uses from the settings, as far as a client
goes without a connection: kafka-python's config validation and aiokafka's constructor checks.
"""
from __future__ import annotations

import subprocess

import faust
import pytest
from aiokafka import AIOKafkaProducer
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from pydantic import ValidationError

from streams.settings import Settings

CA = "/etc/ssl/certs/ca-certificates.crt"


def settings(monkeypatch, **env: str) -> Settings:
    for name in list(__import__("os").environ):
        if name.startswith("SOC_KAFKA_") or name == "SOC_REDIS_URL":
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(f"SOC_{name.upper()}", value)
    return Settings()


def test_plaintext_is_the_default_and_changes_nothing(monkeypatch):
    s = settings(monkeypatch)
    assert s.kafka_client_kwargs() == {}
    assert s.faust_broker_credentials() is None
    assert s.kafka_ssl_context() is None


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_sasl_ssl_kwargs_for_kafka_python_and_credentials_for_faust(monkeypatch, mechanism):
    s = settings(monkeypatch, kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism=mechanism,
                 kafka_sasl_username="soc-worker", kafka_sasl_password="s3cret", kafka_ssl_cafile=CA)
    kwargs = s.kafka_client_kwargs()
    assert kwargs == {"security_protocol": "SASL_SSL", "sasl_mechanism": mechanism,
                      "sasl_plain_username": "soc-worker", "sasl_plain_password": "s3cret",
                      "ssl_check_hostname": True, "ssl_cafile": CA}
    # Every key is one kafka-python's clients know (an unknown one raises at construction).
    for client in (KafkaAdminClient, KafkaProducer, KafkaConsumer):
        assert set(kwargs) <= set(client.DEFAULT_CONFIG), (client, set(kwargs) - set(client.DEFAULT_CONFIG))

    creds = s.faust_broker_credentials()
    assert isinstance(creds, faust.SASLCredentials)
    auth = credentials_to_aiokafka_auth(creds)
    assert auth["security_protocol"] == "SASL_SSL" and auth["sasl_mechanism"] == mechanism
    assert auth["sasl_plain_username"] == "soc-worker" and auth["sasl_plain_password"] == "s3cret"
    assert auth["ssl_context"].check_hostname
    # What Faust hands aiokafka: its constructor checks protocol, mechanism and context together.
    async def build():
        return AIOKafkaProducer(bootstrap_servers="kafka-1:9093", **auth)

    producer = __import__("asyncio").run(build())
    assert producer.client._security_protocol == "SASL_SSL"
    assert producer.client._sasl_mechanism == mechanism
    app = faust.App("soc-settings-test", broker="kafka://kafka-1:9093", broker_credentials=creds)
    assert app.conf.broker_credentials is creds
    # The password never shows in the settings' repr (logged at start-up by some tools).
    assert "s3cret" not in repr(s) and "s3cret" not in str(s.model_dump())


def test_sasl_plaintext_has_no_tls(monkeypatch):
    s = settings(monkeypatch, kafka_security_protocol="SASL_PLAINTEXT", kafka_sasl_mechanism="PLAIN",
                 kafka_sasl_username="u", kafka_sasl_password="p")
    assert not any(k.startswith("ssl_") for k in s.kafka_client_kwargs())
    auth = credentials_to_aiokafka_auth(s.faust_broker_credentials())
    assert auth["security_protocol"] == "SASL_PLAINTEXT" and auth["ssl_context"] is None


def test_mutual_tls(monkeypatch, tmp_path):
    key, cert = tmp_path / "client.key", tmp_path / "client.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=soc",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    s = settings(monkeypatch, kafka_security_protocol="SSL", kafka_ssl_cafile=CA,
                 kafka_ssl_certfile=str(cert), kafka_ssl_keyfile=str(key), kafka_ssl_check_hostname="false")
    kwargs = s.kafka_client_kwargs()
    assert kwargs == {"security_protocol": "SSL", "ssl_check_hostname": False, "ssl_cafile": CA,
                      "ssl_certfile": str(cert), "ssl_keyfile": str(key)}
    creds = s.faust_broker_credentials()
    assert isinstance(creds, faust.SSLCredentials) and creds.context.check_hostname is False
    assert credentials_to_aiokafka_auth(creds)["security_protocol"] == "SSL"


@pytest.mark.parametrize("env,message", [
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_username": "u"}, "SOC_KAFKA_SASL_PASSWORD"),
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_username": "u", "kafka_sasl_password": ""},
     "SOC_KAFKA_SASL_PASSWORD"),
    ({"kafka_sasl_username": "u", "kafka_sasl_password": "p"}, "SASL_SSL"),
    ({"kafka_ssl_cafile": CA}, "SSL or SASL_SSL"),
    ({"kafka_security_protocol": "SSL", "kafka_ssl_certfile": CA}, "go together"),
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "GSSAPI", "kafka_sasl_username": "u",
      "kafka_sasl_password": "p"}, "kafka_sasl_mechanism"),
])
def test_incomplete_or_contradictory_security_settings_refuse_to_load(monkeypatch, env, message):
    with pytest.raises(ValidationError, match=message):
        settings(monkeypatch, **env)


def test_empty_secret_keys_mean_unset(monkeypatch):
    s = settings(monkeypatch, kafka_sasl_username="", kafka_sasl_password="", kafka_ssl_cafile="")
    assert s.kafka_client_kwargs() == {}


def test_redis_password_and_tls_go_in_the_url_and_stay_out_of_messages(monkeypatch):
    import redis

    s = settings(monkeypatch, redis_url="rediss://:p%40ss@redis.soc.svc:6380/0?ssl_ca_certs=" + CA)
    assert s.redis_url_redacted == "rediss://:***@redis.soc.svc:6380/0?ssl_ca_certs=" + CA
    pool = redis.ConnectionPool.from_url(s.redis_url)
    assert pool.connection_class is redis.SSLConnection
    assert pool.connection_kwargs["password"] == "p@ss" and pool.connection_kwargs["ssl_ca_certs"] == CA
    assert settings(monkeypatch, redis_url="redis://redis:6379/0").redis_url_redacted == "redis://redis:6379/0"
