"""Kafka security settings: refused at start when they contradict each other, the password never
shown, and turned into the same client arguments for aiokafka and for FastStream."""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

import pytest
from faststream.kafka.security import parse_security
from faststream.security import SASLPlaintext, SASLScram256, SASLScram512

from sandbox_common.broker import build_broker
from sandbox_common.kafka_connection import KafkaConnection, KafkaSecurityError
from sandbox_common.settings import KafkaSettings, SettingsError, load
from sandboxctl.settings import Settings

CA = str(Path(__file__).parents[1] / "fixtures" / "kafka" / "ca.pem")
PASSWORD = "s3cret-kafka-password-never-shown"
SASL_SSL = {
    "KAFKA_BOOTSTRAP_SERVERS": "kafka-1.example:9094,kafka-2.example:9094",
    "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "KAFKA_SASL_USERNAME": "lifecycle",
    "KAFKA_SASL_PASSWORD": PASSWORD,
    "KAFKA_SSL_CAFILE": CA,
}


def connection(env: dict[str, str]) -> KafkaConnection:
    return load(KafkaSettings, env).kafka_connection()


def test_the_default_is_plaintext_on_the_local_broker() -> None:
    c = connection({})
    assert c.client_kwargs() == {
        "bootstrap_servers": "127.0.0.1:9092",
        "security_protocol": "PLAINTEXT",
    }
    assert c.faststream_security() is None


def test_sasl_ssl_gives_aiokafka_the_mechanism_credentials_and_a_verifying_tls_context() -> None:
    kwargs = connection(SASL_SSL).client_kwargs()
    context = kwargs.pop("ssl_context")
    assert kwargs == {
        "bootstrap_servers": "kafka-1.example:9094,kafka-2.example:9094",
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "lifecycle",
        "sasl_plain_password": PASSWORD,
    }
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode is ssl.CERT_REQUIRED
    assert context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [
        ((("commonName", "e2b-lifecycle unit-test CA"),),)
    ]


@pytest.mark.parametrize(
    ("protocol", "mechanism", "security_type"),
    [
        ("SASL_SSL", "SCRAM-SHA-512", SASLScram512),
        ("SASL_SSL", "SCRAM-SHA-256", SASLScram256),
        ("SASL_SSL", "PLAIN", SASLPlaintext),
        ("SASL_PLAINTEXT", "SCRAM-SHA-512", SASLScram512),
        ("SASL_PLAINTEXT", "PLAIN", SASLPlaintext),
    ],
)
def test_faststream_is_given_what_aiokafka_is_given(
    protocol: str, mechanism: str, security_type: type[object]
) -> None:
    env = {**SASL_SSL, "KAFKA_SECURITY_PROTOCOL": protocol, "KAFKA_SASL_MECHANISM": mechanism}
    if protocol == "SASL_PLAINTEXT":
        del env["KAFKA_SSL_CAFILE"]
    c = connection(env)
    security = c.faststream_security()
    assert type(security) is security_type
    # FastStream's own mapping of its security object back to aiokafka's arguments.
    assert parse_security(security) == {"ssl_context": None, **c.security_kwargs()}


def test_ssl_alone_encrypts_without_sasl_and_trusts_the_system_cas_without_a_ca_file() -> None:
    c = connection({"KAFKA_SECURITY_PROTOCOL": "ssl"})  # any case, like every choice
    kwargs = c.security_kwargs()
    assert set(kwargs) == {"security_protocol", "ssl_context"}
    assert kwargs["security_protocol"] == "SSL"
    assert parse_security(c.faststream_security()) == kwargs
    assert c.ssl_context is c.ssl_context  # one context, read once, shared by the clients


def test_a_mechanism_is_read_in_any_case() -> None:
    c = connection({**SASL_SSL, "KAFKA_SASL_MECHANISM": "scram-sha-256"})
    assert c.security_kwargs()["sasl_mechanism"] == "SCRAM-SHA-256"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"KAFKA_SECURITY_PROTOCOL": "TLS"},
            "KAFKA_SECURITY_PROTOCOL='TLS': expected one of PLAINTEXT, SSL, SASL_PLAINTEXT, "
            "SASL_SSL",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "PLAIN"},
            "KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD",
        ),
        (
            {**SASL_SSL, "KAFKA_SASL_PASSWORD": ""},
            "KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KAFKA_SASL_PASSWORD",
        ),
        (
            {**SASL_SSL, "KAFKA_SASL_MECHANISM": ""},
            "KAFKA_SECURITY_PROTOCOL=SASL_SSL needs KAFKA_SASL_MECHANISM, one of PLAIN, "
            "SCRAM-SHA-256, SCRAM-SHA-512",
        ),
        (
            {**SASL_SSL, "KAFKA_SASL_MECHANISM": "GSSAPI"},
            "needs KAFKA_SASL_MECHANISM, one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 (not 'GSSAPI')",
        ),
        # Credentials without SASL: someone meant a secured connection and would get a plain one.
        (
            {"KAFKA_SASL_USERNAME": "lifecycle", "KAFKA_SASL_PASSWORD": PASSWORD},
            "KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD set, but KAFKA_SECURITY_PROTOCOL=PLAINTEXT "
            "uses no SASL",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SASL_MECHANISM": "PLAIN"},
            "KAFKA_SASL_MECHANISM set, but KAFKA_SECURITY_PROTOCOL=SSL uses no SASL",
        ),
        (
            {"KAFKA_SSL_CAFILE": CA},
            "KAFKA_SSL_CAFILE set, but KAFKA_SECURITY_PROTOCOL=PLAINTEXT uses no TLS",
        ),
        (
            {**SASL_SSL, "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"},
            "KAFKA_SSL_CAFILE set, but KAFKA_SECURITY_PROTOCOL=SASL_PLAINTEXT uses no TLS",
        ),
        (
            {**SASL_SSL, "KAFKA_SSL_CAFILE": "/nowhere/ca.pem"},
            "KAFKA_SSL_CAFILE=/nowhere/ca.pem: no such file",
        ),
        (
            {"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_KEYFILE": CA},
            "KAFKA_SSL_KEYFILE needs KAFKA_SSL_CERTFILE",
        ),
    ],
)
def test_contradicting_settings_stop_the_start_naming_what_to_fix(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError) as raised:
        load(KafkaSettings, env)
    assert message in str(raised.value)
    assert PASSWORD not in str(raised.value)


def test_every_process_settings_check_the_kafka_rules() -> None:
    with pytest.raises(SettingsError, match="KAFKA_SASL_USERNAME"):
        load(
            Settings, {"KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "KAFKA_SASL_MECHANISM": "PLAIN"}
        )


def test_a_client_certificate_that_cannot_be_loaded_is_one_clear_error() -> None:
    # A CA certificate as the client's, with no key: the TLS library refuses it.
    c = connection({"KAFKA_SECURITY_PROTOCOL": "SSL", "KAFKA_SSL_CERTFILE": CA})
    with pytest.raises(KafkaSecurityError, match="Kafka TLS files could not be loaded"):
        c.security_kwargs()


def test_the_password_is_never_shown() -> None:
    settings = load(KafkaSettings, SASL_SSL)
    c = settings.kafka_connection()
    for shown in (repr(settings), repr(c), str(c), c.describe()):
        assert PASSWORD not in shown
    assert c.describe() == (
        "kafka-1.example:9094,kafka-2.example:9094 (SASL_SSL, SCRAM-SHA-512 as lifecycle)"
    )


def test_a_connection_made_in_code_is_checked_too() -> None:
    with pytest.raises(KafkaSecurityError, match="needs KAFKA_SASL_USERNAME"):
        KafkaConnection("k:9092", "SASL_PLAINTEXT", sasl_mechanism="PLAIN", sasl_password="x")


def test_faststream_is_given_each_server_of_a_cluster() -> None:
    # FastStream takes a str as one host name: a three-node list would never connect.
    servers = " 127.0.0.1:9092, 127.0.0.1:9192,127.0.0.1:9292"
    broker = build_broker(KafkaConnection(servers), logging.getLogger("test"), durable=True)
    assert broker._connection_kwargs["bootstrap_servers"] == [
        "127.0.0.1:9092",
        "127.0.0.1:9192",
        "127.0.0.1:9292",
    ]
