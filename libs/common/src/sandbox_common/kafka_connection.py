"""How every Kafka client of ours reaches the broker: the bootstrap servers and the security
settings (TLS, SASL) as one frozen value, and the one place that turns them into client
arguments: aiokafka's keyword arguments for the producers, consumers and admin clients we build
ourselves, and FastStream's security object for the consumers' KafkaBroker.

Settings that contradict each other (a SASL protocol without a user, a CA file for a plaintext
connection) are refused when the value is made, naming the variables: a client must not
quietly connect in a way nobody meant. The password is never shown (repr, `describe`)."""

from __future__ import annotations

import os
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from aiokafka.helpers import create_ssl_context
from faststream.security import (
    BaseSecurity,
    SASLPlaintext,
    SASLScram256,
    SASLScram512,
)

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
_SASL_SECURITY: dict[str, Callable[..., BaseSecurity]] = {
    "PLAIN": SASLPlaintext,
    "SCRAM-SHA-256": SASLScram256,
    "SCRAM-SHA-512": SASLScram512,
}
SASL_MECHANISMS = tuple(_SASL_SECURITY)


class KafkaSecurityError(ValueError):
    """The Kafka security settings contradict each other, or a file they name cannot be read."""


@dataclass(frozen=True)
class KafkaConnection:
    bootstrap_servers: str
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: str = ""
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)
    ssl_cafile: str = ""
    ssl_certfile: str = ""
    ssl_keyfile: str = ""

    def __post_init__(self) -> None:
        found = problems(self)
        if found:
            raise KafkaSecurityError("; ".join(found))

    @property
    def sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def servers(self) -> list[str]:
        """Each bootstrap server: FastStream takes a str as one host, a cluster's list too."""
        return [s.strip() for s in self.bootstrap_servers.split(",") if s.strip()]

    def describe(self) -> str:
        """For log lines and errors: where and how, never the password."""
        how: str = self.security_protocol
        if self.sasl:
            how += f", {self.sasl_mechanism} as {self.sasl_username}"
        return f"{self.bootstrap_servers} ({how})"

    @cached_property
    def ssl_context(self) -> ssl.SSLContext | None:
        """Made once per connection (reads the files) and shared by its clients."""
        if not self.tls:
            return None
        try:
            context: ssl.SSLContext = create_ssl_context(
                cafile=self.ssl_cafile or None,
                certfile=self.ssl_certfile or None,
                keyfile=self.ssl_keyfile or None,
            )
        except (OSError, ssl.SSLError) as exc:
            raise KafkaSecurityError(f"Kafka TLS files could not be loaded: {exc}") from exc
        return context

    def security_kwargs(self) -> dict[str, Any]:
        """aiokafka's security arguments (the same for a producer, consumer or admin client)."""
        kwargs: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.tls:
            kwargs["ssl_context"] = self.ssl_context
        if self.sasl:
            kwargs["sasl_mechanism"] = self.sasl_mechanism
            kwargs["sasl_plain_username"] = self.sasl_username
            kwargs["sasl_plain_password"] = self.sasl_password
        return kwargs

    def client_kwargs(self) -> dict[str, Any]:
        """Everything an aiokafka client needs to connect: spread into its constructor."""
        return {"bootstrap_servers": self.bootstrap_servers, **self.security_kwargs()}

    def faststream_security(self) -> BaseSecurity | None:
        """For KafkaBroker(security=...): FastStream maps it back onto the same aiokafka
        arguments (faststream.kafka.security.parse_security)."""
        if self.sasl:
            return _SASL_SECURITY[self.sasl_mechanism](
                self.sasl_username,
                self.sasl_password,
                ssl_context=self.ssl_context,
                use_ssl=self.tls,
            )
        if self.tls:
            return BaseSecurity(ssl_context=self.ssl_context, use_ssl=True)
        return None


def problems(c: KafkaConnection) -> list[str]:
    """What is inconsistent in `c`, each naming the variables to fix."""
    return _sasl_problems(c) + _tls_problems(c)


def _sasl_problems(c: KafkaConnection) -> list[str]:
    protocol = f"KAFKA_SECURITY_PROTOCOL={c.security_protocol}"
    credentials = (
        ("KAFKA_SASL_USERNAME", c.sasl_username),
        ("KAFKA_SASL_PASSWORD", c.sasl_password),
    )
    if not c.sasl:
        given = [n for n, v in (("KAFKA_SASL_MECHANISM", c.sasl_mechanism), *credentials) if v]
        if not given:
            return []
        return [
            f"{', '.join(given)} set, but {protocol} uses no SASL "
            "(set KAFKA_SECURITY_PROTOCOL=SASL_SSL or SASL_PLAINTEXT)"
        ]
    found = []
    if c.sasl_mechanism not in SASL_MECHANISMS:
        found.append(
            f"{protocol} needs KAFKA_SASL_MECHANISM, one of {', '.join(SASL_MECHANISMS)}"
            + (f" (not {c.sasl_mechanism!r})" if c.sasl_mechanism else "")
        )
    missing = [n for n, v in credentials if not v]
    if missing:
        found.append(f"{protocol} needs {' and '.join(missing)}")
    return found


def _tls_problems(c: KafkaConnection) -> list[str]:
    files = (
        ("KAFKA_SSL_CAFILE", c.ssl_cafile),
        ("KAFKA_SSL_CERTFILE", c.ssl_certfile),
        ("KAFKA_SSL_KEYFILE", c.ssl_keyfile),
    )
    given = [(n, path) for n, path in files if path]
    if not c.tls:
        if not given:
            return []
        return [
            f"{', '.join(n for n, _ in given)} set, but KAFKA_SECURITY_PROTOCOL="
            f"{c.security_protocol} uses no TLS (set KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL)"
        ]
    found = [f"{n}={path}: no such file" for n, path in given if not os.path.isfile(path)]
    if c.ssl_keyfile and not c.ssl_certfile:
        found.append("KAFKA_SSL_KEYFILE needs KAFKA_SSL_CERTFILE (the client certificate)")
    return found
