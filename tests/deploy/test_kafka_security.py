"""The Kafka security settings (TLS, SASL) in the deployments. The chart gives them to every
component and the init hook alike: the password from a Secret, the CA and client certificate
mounted from a Secret as files, contradicting values refused at render time as the services
refuse them at start. Compose passes them through, PLAINTEXT by default."""

from __future__ import annotations

from typing import Any

import pytest

from sandbox_common.settings import KafkaSettings, load
from tests.deploy.test_chart import (
    DEFAULT,
    KUBE,
    Render,
    by_kind,
    deployments,
    refused_render,
    run_helm,
)
from tests.deploy.test_chart import render as render  # the fixture, shared
from tests.deploy.test_compose import ONE_SHOT, OURS
from tests.deploy.test_compose import compose as compose  # the fixture, shared

SASL_SSL = [
    "kafka.security.protocol=SASL_SSL",
    "kafka.security.sasl.mechanism=SCRAM-SHA-512",
    "kafka.security.sasl.username=lifecycle",
]
MANAGED = [
    *SASL_SSL,
    "kafka.security.sasl.existingSecret=kafka-user",
    "kafka.security.tls.existingSecret=cluster-ca",
    "kafka.security.tls.certKey=user.crt",
    "kafka.security.tls.keyKey=user.key",
]
KAFKA_VARS = {
    "KAFKA_SECURITY_PROTOCOL",
    "KAFKA_SASL_MECHANISM",
    "KAFKA_SASL_USERNAME",
    "KAFKA_SASL_PASSWORD",
    "KAFKA_SSL_CAFILE",
    "KAFKA_SSL_CERTFILE",
    "KAFKA_SSL_KEYFILE",
}


def pods(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every pod spec that talks to Kafka: the components and the init hook."""
    found = {name: d["spec"]["template"]["spec"] for name, d in deployments(docs).items()}
    found["init"] = by_kind(docs, "Job")["rel-e2b-lifecycle-init"]["spec"]["template"]["spec"]
    return found


def kafka_env(pod: dict[str, Any]) -> dict[str, Any]:
    (container,) = pod["containers"]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def only_kafka(env: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in env.items() if k in KAFKA_VARS}


def test_by_default_every_pod_speaks_plaintext_and_mounts_nothing(render: Render) -> None:
    docs = render(DEFAULT)
    for name, pod in pods(docs).items():
        assert only_kafka(kafka_env(pod)) == {"KAFKA_SECURITY_PROTOCOL": "PLAINTEXT"}, name
        assert [v["name"] for v in pod["volumes"]] == ["tmp"], name
    assert "rel-e2b-lifecycle-kafka" not in by_kind(docs, "Secret")


def test_a_managed_kafka_password_and_certificates_come_from_your_secrets(
    render: Render,
) -> None:
    docs = render(DEFAULT, *MANAGED)
    for name, pod in pods(docs).items():
        assert only_kafka(kafka_env(pod)) == {
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KAFKA_SASL_USERNAME": "lifecycle",
            "KAFKA_SASL_PASSWORD": {"secretKeyRef": {"name": "kafka-user", "key": "password"}},
            "KAFKA_SSL_CAFILE": "/etc/kafka-tls/ca.crt",
            "KAFKA_SSL_CERTFILE": "/etc/kafka-tls/user.crt",
            "KAFKA_SSL_KEYFILE": "/etc/kafka-tls/user.key",
        }, name
        (container,) = pod["containers"]
        assert {
            "name": "kafka-tls",
            "mountPath": "/etc/kafka-tls",
            "readOnly": True,
        } in container["volumeMounts"], name
        assert {"name": "kafka-tls", "secret": {"secretName": "cluster-ca"}} in pod["volumes"]
    assert "rel-e2b-lifecycle-kafka" not in by_kind(docs, "Secret")


def test_on_a_dev_cluster_the_chart_keeps_the_password_in_a_secret_of_its_own(
    render: Render,
) -> None:
    docs = render(DEFAULT, *SASL_SSL, "kafka.security.sasl.password=dev-kafka-password")
    secret = by_kind(docs, "Secret")["rel-e2b-lifecycle-kafka"]
    assert secret["stringData"] == {"KAFKA_SASL_PASSWORD": "dev-kafka-password"}
    for name, pod in pods(docs).items():
        password = kafka_env(pod)["KAFKA_SASL_PASSWORD"]
        if name == "init":
            # A pre-install hook runs before the chart's Secret exists.
            assert password == "dev-kafka-password"
        else:
            assert password == {
                "secretKeyRef": {"name": "rel-e2b-lifecycle-kafka", "key": "KAFKA_SASL_PASSWORD"}
            }, name


def test_what_the_chart_renders_the_services_accept(render: Render) -> None:
    docs = render(
        DEFAULT,
        "kafka.security.protocol=SASL_PLAINTEXT",
        "kafka.security.sasl.mechanism=PLAIN",
        "kafka.security.sasl.username=lifecycle",
        "kafka.security.sasl.existingSecret=kafka-user",
    )
    env = only_kafka(kafka_env(pods(docs)["projector"]))
    env["KAFKA_SASL_PASSWORD"] = "from-the-secret"
    c = load(KafkaSettings, env).kafka_connection()
    assert c.describe() == "127.0.0.1:9092 (SASL_PLAINTEXT, PLAIN as lifecycle)"


def test_helm_lint_passes_with_a_managed_kafka(helm: str) -> None:
    args = ["lint", "--strict", "--kube-version", KUBE, ".", "-f", str(DEFAULT)]
    for s in MANAGED:
        args += ["--set", s]
    result = run_helm(helm, *args)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["kafka.security.protocol=TLS"], "kafka/security/protocol"),
        ([*SASL_SSL, "kafka.security.sasl.mechanism=GSSAPI"], "kafka/security/sasl/mechanism"),
        (SASL_SSL, "kafka.security.protocol=SASL_SSL needs kafka.security.sasl.mechanism"),
        (
            ["kafka.security.sasl.username=lifecycle"],
            "kafka.security.sasl is set but kafka.security.protocol=PLAINTEXT uses no SASL",
        ),
        (
            [
                "kafka.security.protocol=SASL_PLAINTEXT",
                "kafka.security.sasl.mechanism=PLAIN",
                "kafka.security.sasl.username=u",
                "kafka.security.sasl.password=p",
                "kafka.security.tls.existingSecret=ca",
            ],
            "uses no TLS",
        ),
        (
            [
                "kafka.security.protocol=SSL",
                "kafka.security.tls.existingSecret=ca",
                "kafka.security.tls.keyKey=tls.key",
            ],
            "kafka.security.tls.keyKey needs kafka.security.tls.certKey",
        ),
    ],
)
def test_contradicting_kafka_values_fail_with_the_reason(
    helm: str, sets: list[str], message: str
) -> None:
    assert message in refused_render(helm, sets)


def test_compose_passes_the_kafka_security_settings_to_every_service(
    compose: dict[str, Any],
) -> None:
    for name in [*OURS, *ONE_SHOT]:
        env = compose["services"][name]["environment"]
        assert set(env) >= KAFKA_VARS, name
        assert env["KAFKA_SECURITY_PROTOCOL"] == "${KAFKA_SECURITY_PROTOCOL:-PLAINTEXT}"
        # The password is never given a value of the file's own.
        assert env["KAFKA_SASL_PASSWORD"] == "${KAFKA_SASL_PASSWORD:-}"
