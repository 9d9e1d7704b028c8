"""A Kafka client that cannot connect at start keeps trying, with backoff, and says why once.

aiokafka logs the cause of a failed bootstrap and then raises a bare "Unable to bootstrap"
(KafkaConnectionError), so a refused password looks like a broker that is down. `diagnose`
asks the first bootstrap server again, directly, for the cause: an operator reads
"Kafka authentication failed for user X (SCRAM-SHA-512): ..." once, and the readiness probe
reports it, instead of a crash loop or a line per attempt.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable

from aiokafka.conn import create_conn
from aiokafka.errors import KafkaConnectionError, KafkaError, SaslAuthenticationFailed

from sandbox_common.kafka_connection import KafkaConnection

log = logging.getLogger(__name__)

# What a failed connection attempt raises (aiokafka's errors, socket and TLS errors, timeouts).
CONNECT_ERRORS = (KafkaError, OSError, TimeoutError)


async def diagnose(connection: KafkaConnection, timeout: float = 5.0) -> str | None:  # noqa: ASYNC109
    """Why `connection` cannot connect, in one line; None: its first server accepts it now."""
    host, port = _first_server(connection.bootstrap_servers)
    try:
        conn = await asyncio.wait_for(
            create_conn(
                host,
                port,
                request_timeout_ms=int(timeout * 1000),
                **connection.security_kwargs(),
            ),
            timeout,
        )
    except SaslAuthenticationFailed as exc:
        return (
            f"Kafka authentication failed for user {connection.sasl_username} "
            f"({connection.sasl_mechanism}): {exc}"
        )
    except ssl.SSLCertVerificationError as exc:
        trusted = f"CA file {connection.ssl_cafile}" if connection.ssl_cafile else "system CAs"
        return (
            f"Kafka TLS: the certificate of {host}:{port} is not verified by the {trusted}: "
            f"{exc.verify_message}"
        )
    except (KafkaConnectionError, ConnectionResetError) as exc:
        # A listener of another protocol hangs up during the handshake.
        return (
            f"Kafka at {host}:{port} closed the connection ({exc!r}): does it listen with "
            f"KAFKA_SECURITY_PROTOCOL={connection.security_protocol}?"
        )
    except CONNECT_ERRORS as exc:
        return f"Kafka not reachable at {connection.describe()}: {exc!r}"
    conn.close()
    return None


class KafkaUnavailableError(ConnectionError):
    """`diagnose`'s finding, raised by `check` before a client is made that could not connect
    anyway (FastStream leaves the producer of a failed start unclosed)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


async def check(connection: KafkaConnection) -> None:
    """Raises KafkaUnavailableError with the reason when `connection` cannot connect now."""
    reason = await diagnose(connection)
    if reason is not None:
        raise KafkaUnavailableError(reason)


def _first_server(bootstrap_servers: str) -> tuple[str, int]:
    first = bootstrap_servers.split(",")[0].strip()
    host, colon, port = first.rpartition(":")
    return (host, int(port)) if colon and port.isdigit() else (first, 9092)


class ConnectionState:
    """The last reason a client could not connect (None once it did), each reason logged once."""

    def __init__(self, connection: KafkaConnection, client: str) -> None:
        self._connection = connection
        self._client = client
        self.problem: str | None = None

    async def failed(self, exc: BaseException) -> None:
        if isinstance(exc, KafkaUnavailableError):
            reason: str = exc.reason
        else:
            reason = await diagnose(self._connection) or f"{exc!r}"
        if reason != self.problem:
            log.error("%s cannot connect: %s", self._client, reason)
        self.problem = reason

    def connected(self) -> None:
        if self.problem is not None:
            log.info("%s connected to Kafka at %s", self._client, self._connection.describe())
        self.problem = None


async def keep_trying(
    connect: Callable[[], Awaitable[object]],
    state: ConnectionState,
    *,
    errors: tuple[type[BaseException], ...] = CONNECT_ERRORS,
    first_delay: float = 1.0,
    max_delay: float = 30.0,
) -> None:
    """Runs `connect` until it succeeds (`errors`: what a failed attempt raises), doubling the
    pause between attempts up to `max_delay`."""
    delay = first_delay
    while True:
        try:
            await connect()
        except errors as exc:
            await state.failed(exc)
        else:
            state.connected()
            return
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay)
