"""Durable publishing of facts to `sandbox-lifecycle`: acks=all, idempotent producer, keyed by
sandbox. Used by ingest (webhooks), status-api (activity, wake) and the enforcer's ticker
(pause requests, many at once: `*_all`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from sandbox_common import commands, topics
from sandbox_common import envelope as env
from sandbox_common.kafka_batches import Wire, send_all
from sandbox_common.kafka_connection import KafkaConnection
from sandbox_common.kafka_reconnect import ConnectionState, keep_trying
from sandbox_common.tasks import cancel_and_wait

log = logging.getLogger(__name__)


class BrokerUnavailableError(RuntimeError):
    """The broker did not acknowledge in time; the caller answers 503 so E2B retries.

    `in_flight`: the record's delivery when the producer took it but no acknowledgement came in
    time. The producer keeps retrying it, so it may still land: a retry of the same event should
    wait for it (`KafkaPublisher.settle`) instead of publishing a second copy.
    """

    def __init__(self, message: str, in_flight: asyncio.Future[Any] | None = None) -> None:
        super().__init__(message)
        self.in_flight = in_flight


@dataclass(frozen=True)
class Shape:
    """The producer's batch per partition, and the topics (facts, commands). The producer holds
    one batch per partition until the broker took the one before: many records at once (the
    enforcer's ticks) want big batches, or each round trip carries 16 KiB per partition
    (aiokafka's default) and 10,000 records take dozens of round trips. Other topics only in
    benchmarks, which must not feed a running stack."""

    batch_bytes: int = 16384
    topic_names: tuple[str, str] = (topics.LIFECYCLE, topics.COMMANDS)


class KafkaPublisher:
    def __init__(
        self,
        connection: KafkaConnection,
        timeout_seconds: float,
        linger_ms: int = 0,
        client_id: str = "sandbox-ingest",
        shape: Shape | None = None,
    ) -> None:
        self._connection = connection
        shape = shape or Shape()
        self._lifecycle, self._commands = shape.topic_names
        self._batch_bytes = shape.batch_bytes
        self._client_id = client_id
        self._timeout = timeout_seconds
        self._linger_ms = linger_ms
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        self._state = ConnectionState(connection, f"{client_id}'s producer")
        self._reconnecting: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect; failure is not fatal: requests answer 503 until a retry succeeds, and the
        producer keeps trying in the background (a pod out of its Service gets no request to
        retry on), the reason logged once and shown by `problem`."""
        try:
            await self._ensure_producer()
        except BrokerUnavailableError as exc:
            await self._state.failed(exc)
            retry = keep_trying(
                self._ensure_producer, self._state, errors=(BrokerUnavailableError,)
            )
            self._reconnecting = asyncio.create_task(retry, name="kafka-reconnect")

    @property
    def problem(self) -> str | None:
        """Why the producer is not connected, once an attempt failed (None: connected, or no
        attempt yet)."""
        return None if self.connected else self._state.problem

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is not None:
            return self._producer
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    **self._connection.client_kwargs(),
                    acks="all",
                    enable_idempotence=True,
                    compression_type=topics.COMPRESSION,
                    linger_ms=self._linger_ms,
                    max_batch_size=self._batch_bytes,
                    request_timeout_ms=int(self._timeout * 1000),
                    client_id=self._client_id,
                )
                try:
                    await asyncio.wait_for(producer.start(), self._timeout)
                except (KafkaError, OSError, TimeoutError) as exc:
                    await producer.stop()
                    raise BrokerUnavailableError(f"cannot connect to Kafka: {exc!r}") from exc
                self._producer = producer
            return self._producer

    async def publish(self, envelope: env.Envelope) -> None:
        """Returns only once every in-sync replica has the fact."""
        await self._send(
            self._lifecycle,
            env.encode(envelope),
            envelope.sandbox_id,
            env.kafka_headers(envelope),
        )

    async def publish_command(self, command: commands.Command) -> None:
        """An intent on `sandbox-commands`, with the same durability as a fact."""
        await self._send(
            self._commands,
            commands.encode(command),
            command.sandbox_id,
            [("command-id", command.command_id.encode())],
        )

    async def _send(
        self, topic: str, value: bytes, sandbox_id: str, headers: list[tuple[str, bytes]]
    ) -> None:
        producer = await self._ensure_producer()
        delivery: asyncio.Future[Any] | None = None
        try:
            # asyncio.timeout, not wait_for: no extra task per request on the hot path. The
            # shield keeps the delivery alive past the timeout: it is the caller's to track.
            async with asyncio.timeout(self._timeout):
                delivery = await producer.send(
                    topic, value, key=topics.record_key(sandbox_id), headers=headers
                )
                await asyncio.shield(delivery)
        except (KafkaError, OSError, TimeoutError) as exc:
            pending = delivery if delivery is not None and not delivery.done() else None
            raise BrokerUnavailableError(f"publish not acknowledged: {exc!r}", pending) from exc

    async def publish_all(self, facts: Sequence[env.Envelope]) -> list[BaseException | None]:
        """Many facts at once (kafka_batches.py): per fact None, or why it failed."""
        return await self._send_all(
            [
                (
                    self._lifecycle,
                    env.encode(f),
                    topics.record_key(f.sandbox_id),
                    env.kafka_headers(f),
                )
                for f in facts
            ]
        )

    async def publish_commands_all(
        self, issued: Sequence[commands.Command]
    ) -> list[BaseException | None]:
        """Many commands at once (kafka_batches.py): per command None, or why it failed."""
        return await self._send_all(
            [
                (
                    self._commands,
                    commands.encode(c),
                    topics.record_key(c.sandbox_id),
                    [("command-id", c.command_id.encode())],
                )
                for c in issued
            ]
        )

    async def _send_all(self, records: list[Wire]) -> list[BaseException | None]:
        try:
            producer = await self._ensure_producer()
        except BrokerUnavailableError as exc:
            return [exc] * len(records)
        return await send_all(producer, records, self._timeout)

    async def settle(self, delivery: asyncio.Future[Any]) -> None:
        """Waits, up to the publish timeout again, for a delivery an earlier attempt left in
        flight; raises BrokerUnavailableError (still in flight, or failed) like a publish."""
        try:
            async with asyncio.timeout(self._timeout):
                await asyncio.shield(delivery)
        except (KafkaError, OSError, TimeoutError) as exc:
            pending = None if delivery.done() else delivery
            raise BrokerUnavailableError(
                f"earlier publish not acknowledged: {exc!r}", pending
            ) from exc

    @property
    def connected(self) -> bool:
        return self._producer is not None

    async def stop(self) -> None:
        await cancel_and_wait(self._reconnecting)
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
