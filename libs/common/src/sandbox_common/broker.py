"""The FastStream side of Kafka for the consuming services (projector, ticker, actuator): one
way to build their broker, and the writers that publish through it: facts and commands keyed
by sandbox, and dead letters with their reason. (ingest, status-api and the tools publish with
kafka_publisher.py instead: a producer that needs no subscriber.)"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import msgspec
from faststream.asgi import AsgiFastStream
from faststream.asgi.factories.asyncapi.route import AsyncAPIRoute
from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI
from pydantic import WithJsonSchema

from sandbox_common import commands, dead_letters, envelope, topics
from sandbox_common.commands import Command
from sandbox_common.dead_letters import Record
from sandbox_common.envelope import Envelope
from sandbox_common.kafka_connection import KafkaConnection
from sandbox_common.kafka_reconnect import CONNECT_ERRORS, ConnectionState, check, keep_trying
from sandbox_common.probes import probe_routes


def build_broker(
    connection: KafkaConnection, log: logging.Logger, *, durable: bool, apply_types: bool = True
) -> PatientKafkaBroker:
    """`durable`: acks=all and idempotence, so a fact is on every in-sync replica before the
    record that caused it is committed. Per-message "Received/Processed" lines go to DEBUG: at
    thousands a second they are noise."""
    durability: dict[str, Any] = {"acks": "all", "enable_idempotence": True} if durable else {}
    return PatientKafkaBroker(
        connection,
        **durability,
        compression_type=topics.COMPRESSION,
        logger=log,
        log_level=logging.DEBUG,
        apply_types=apply_types,
    )


class PatientKafkaBroker(KafkaBroker):
    """A KafkaBroker whose start waits for Kafka instead of failing: unreachable, or refusing
    our credentials, it tries again with backoff (the reason logged once, and in `problem` for
    /readyz) while the process serves its probes. FastStream's own start gives up at the first
    failure and leaves the app up and never consuming."""

    def __init__(self, connection: KafkaConnection, **options: Any) -> None:
        super().__init__(connection.servers(), security=connection.faststream_security(), **options)
        # The process's other Kafka clients (lag monitor, state topic) connect the same way.
        self.connection = connection
        self._state = ConnectionState(connection, "the consumers' Kafka client")

    @property
    def problem(self) -> str | None:
        """Why the broker has not connected yet (None: connected, or not tried yet)."""
        return self._state.problem

    async def start(self) -> None:
        await keep_trying(self._start_once, self._state)

    async def _start_once(self) -> None:
        await check(self.connection)
        try:
            await super().start()
        except CONNECT_ERRORS:
            await self.stop()  # the clients the failed attempt made
            raise


class Process(Protocol):
    """A consumer's parts, as its app runs them (a bootstrap's *Parts)."""

    async def problems(self) -> list[str]: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class StartGuard:
    """A process's start, remembered when it fails: FastStream logs a failed after-startup
    hook and stops the broker, but the HTTP server goes on answering, so without this a
    projector that could not start (no schema yet, PostgreSQL away) stayed up, said ready and
    folded nothing. Now /readyz and /healthz say why (503) and an orchestrator restarts it."""

    def __init__(self, process: Process, log: logging.Logger) -> None:
        self._process = process
        self._log = log
        self._failure: str | None = None

    async def start(self) -> None:
        try:
            await self._process.start()
        except Exception as exc:
            self._failure = f"the start failed: {type(exc).__name__}: {exc}"
            self._log.critical("%s; restart the process once it is fixed", self._failure)
            raise

    def broken(self) -> str | None:
        return self._failure

    async def problems(self) -> list[str]:
        if self._failure is not None:
            return [self._failure]
        return await self._process.problems()


def consumer_app(
    broker: KafkaBroker,
    process: Process,
    log: logging.Logger,
    *,
    draining: Sequence[Callable[[], Awaitable[None]]] = (),
    documented: bool | KafkaBroker = True,
) -> AsgiFastStream:
    """The broker and its process as one ASGI app: /healthz, /readyz and /metrics, and the
    AsyncAPI document (/asyncapi, /asyncapi.json) of its subscriptions when `documented` (or
    of the subscriptions of `documented` itself when it is a broker, one never started: a
    process that consumes without FastStream); never "try it out", which would publish to
    the topics. The process starts once the broker is
    connected; `draining` runs when it stops (take no more work, finish what is in flight),
    and the process closes after."""
    started = StartGuard(process, log)
    return AsgiFastStream(
        broker,
        asgi_routes=probe_routes(started.problems, started.broken),
        after_startup=[started.start],
        on_shutdown=list(draining),
        after_shutdown=[process.close],
        logger=log,
        specification=AsyncAPI(documented) if isinstance(documented, KafkaBroker) else None,
        asyncapi_path=AsyncAPIRoute("/asyncapi", try_it_out_path=None) if documented else None,
    )


def wire_schema(wire_type: type[Any]) -> WithJsonSchema:
    """For a handler that decodes its records itself: the AsyncAPI document shows the wire
    type's schema (msgspec's, its references inlined) instead of what the handler's parameter
    holds."""
    schema = msgspec.json.schema(wire_type)
    definitions: dict[str, Any] = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                return inline(definitions[ref.rsplit("/", 1)[-1]])
            return {k: inline(v) for k, v in node.items()}
        if isinstance(node, list):
            return [inline(item) for item in node]
        return node

    return WithJsonSchema(inline(schema))


class BrokerFacts:
    """Facts to `sandbox-lifecycle` and commands to `sandbox-commands`; each returns once the
    broker acknowledged."""

    def __init__(self, broker: KafkaBroker) -> None:
        self._broker = broker

    async def publish(self, fact: Envelope) -> None:
        await self._broker.publish(
            envelope.encode(fact),
            topic=topics.LIFECYCLE,
            key=topics.record_key(fact.sandbox_id),
            headers={k: v.decode() for k, v in envelope.kafka_headers(fact)},
        )

    async def publish_command(self, command: Command) -> None:
        await self._broker.publish(
            commands.encode(command),
            topic=topics.COMMANDS,
            key=topics.record_key(command.sandbox_id),
            headers={"command-id": command.command_id},
        )


class BrokerDeadLetters:
    """A record that cannot be processed goes to `sandbox-lifecycle.dlq` as it was, with the
    reason and where it came from in its headers."""

    def __init__(self, broker: KafkaBroker) -> None:
        self._broker = broker

    async def send(self, record: Record, reason: str) -> None:
        await self._broker.publish(
            record.value or b"",
            topic=topics.LIFECYCLE_DLQ,
            key=record.key,
            headers=dead_letters.headers(record, reason),
        )


class BrokerDeadNotices:
    """A notification its receiver kept refusing goes to `sandbox-notifications.dlq`: its body
    as it was, keyed by project, with the delivery id, event and reason in the headers."""

    def __init__(self, broker: KafkaBroker) -> None:
        self._broker = broker

    async def publish_dead(
        self, project_id: str, delivery_id: str, event: str, body: bytes, reason: str
    ) -> None:
        await self._broker.publish(
            body,
            topic=topics.NOTIFICATIONS_DLQ,
            key=project_id.encode(),
            headers={"delivery-id": delivery_id, "event": event, "dlq-reason": reason},
        )
