"""The FastStream side of Kafka for the consuming services (projector, ticker, actuator): one
way to build their broker, and the writers that publish through it: facts and commands keyed
by sandbox, and dead letters with their reason. (ingest, status-api and the tools publish with
kafka_publisher.py instead: a producer that needs no subscriber.)"""

from __future__ import annotations

import asyncio
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
from sandbox_common.probes import probe_routes


def build_broker(
    bootstrap_servers: str, log: logging.Logger, *, durable: bool, apply_types: bool = True
) -> KafkaBroker:
    """`durable`: acks=all and idempotence, so a fact is on every in-sync replica before the
    record that caused it is committed. Per-message "Received/Processed" lines go to DEBUG: at
    thousands a second they are noise."""
    if durable:
        return KafkaBroker(
            bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            compression_type=topics.COMPRESSION,
            logger=log,
            log_level=logging.DEBUG,
            apply_types=apply_types,
        )
    return KafkaBroker(
        bootstrap_servers,
        compression_type=topics.COMPRESSION,
        logger=log,
        log_level=logging.DEBUG,
        apply_types=apply_types,
    )


class Process(Protocol):
    """A consumer's parts, as its app runs them (a bootstrap's *Parts)."""

    async def problems(self) -> list[str]: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


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
    return AsgiFastStream(
        broker,
        asgi_routes=probe_routes(process.problems),
        after_startup=[process.start],
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


# One record as the broker takes it: (topic, value, key, headers).
_Wire = tuple[str, bytes, bytes, dict[str, str]]


class BrokerFacts:
    """Facts to `sandbox-lifecycle` and commands to `sandbox-commands`; each returns once the
    broker acknowledged. The `*_all` forms hand every record to the producer first and then
    wait for all acknowledgements (the producer batches them: a tick's 10,000 pause requests
    cost a few broker round trips, not 10,000), and say per record whether it failed."""

    def __init__(
        self,
        broker: KafkaBroker,
        lifecycle: str = topics.LIFECYCLE,
        commands_topic: str = topics.COMMANDS,
    ) -> None:
        self._broker = broker
        # Other topics only in benchmarks, which must not feed a running stack.
        self._lifecycle, self._commands = lifecycle, commands_topic

    async def publish(self, fact: Envelope) -> None:
        topic, value, key, headers = self._fact(fact)
        await self._broker.publish(value, topic=topic, key=key, headers=headers)

    async def publish_command(self, command: Command) -> None:
        topic, value, key, headers = self._command(command)
        await self._broker.publish(value, topic=topic, key=key, headers=headers)

    async def publish_all(self, facts: Sequence[Envelope]) -> list[BaseException | None]:
        return await self._all([self._fact(f) for f in facts])

    async def publish_commands_all(self, issued: Sequence[Command]) -> list[BaseException | None]:
        return await self._all([self._command(c) for c in issued])

    def _fact(self, fact: Envelope) -> _Wire:
        headers = {k: v.decode() for k, v in envelope.kafka_headers(fact)}
        return self._lifecycle, envelope.encode(fact), topics.record_key(fact.sandbox_id), headers

    def _command(self, command: Command) -> _Wire:
        value, key = commands.encode(command), topics.record_key(command.sandbox_id)
        return self._commands, value, key, {"command-id": command.command_id}

    async def _all(self, records: Sequence[_Wire]) -> list[BaseException | None]:
        deliveries: list[asyncio.Future[Any] | BaseException] = []
        for topic, value, key, headers in records:
            try:
                deliveries.append(
                    await self._broker.publish(
                        value, topic=topic, key=key, headers=headers, no_confirm=True
                    )
                )
            except Exception as exc:  # this record not taken (producer closed, buffer full)
                deliveries.append(exc)
        waiting = [d for d in deliveries if isinstance(d, asyncio.Future)]
        await asyncio.gather(*waiting, return_exceptions=True)
        return [_failure(d) for d in deliveries]


def _failure(delivery: asyncio.Future[Any] | BaseException) -> BaseException | None:
    if isinstance(delivery, BaseException):
        return delivery
    if delivery.cancelled():
        return asyncio.CancelledError()
    return delivery.exception()


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
