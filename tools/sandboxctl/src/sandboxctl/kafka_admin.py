"""The broker as `sandboxctl topics` sees it: aiokafka's admin client and offset look-ups, and
nothing else here knows aiokafka. Every failure becomes one `OperatorError` line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, for_code

from sandbox_common.consumer_lag import committed_lag
from sandbox_common.kafka_connection import KafkaConnection
from sandbox_common.kafka_reconnect import diagnose
from sandboxctl.errors import OperatorError
from sandboxctl.topic_specs import TopicSpec, TopicState

_TOPIC_EXISTS = 36  # TOPIC_ALREADY_EXISTS


class KafkaAdmin:
    def __init__(self, connection: KafkaConnection, timeout_seconds: float = 10.0) -> None:
        self.connection = connection
        self._timeout = timeout_seconds
        # aiokafka logs every failed connection attempt itself; the CLI says it once, in one line.
        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
        timeout_ms = int(timeout_seconds * 1000)
        kafka = connection.client_kwargs()
        self._admin = AIOKafkaAdminClient(
            **kafka, request_timeout_ms=timeout_ms, client_id="sandboxctl"
        )
        self._offsets = AIOKafkaConsumer(
            **kafka,
            request_timeout_ms=timeout_ms,
            enable_auto_commit=False,
            client_id="sandboxctl",
        )

    async def __aenter__(self) -> KafkaAdmin:
        try:
            await self._admin.start()
            await self._offsets.start()
            # Let the consumer's internal task start: stopped before its first step, it raises
            # CancelledError out of stop() (aiokafka#647).
            await asyncio.sleep(0)
        except KafkaError as exc:
            await self._close()
            # aiokafka's own error names no cause: a refused password looks like a broker down.
            why = await diagnose(self.connection, self._timeout) or repr(exc)
            raise OperatorError(
                f"{why}; check KAFKA_BOOTSTRAP_SERVERS and KAFKA_SECURITY_*"
            ) from exc
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._close()

    async def _close(self) -> None:
        for close in (self._offsets.stop, self._admin.close):
            # Closing a client that never started may fail; there is nothing to release then.
            with contextlib.suppress(Exception):
                await close()

    async def existing(self, names: Sequence[str]) -> dict[str, TopicState]:
        """The named topics that exist. Asks only for topics listed first: a metadata request
        naming a missing topic would create it where auto.create.topics.enable is on."""
        present = [n for n in names if n in set(await self._admin.list_topics())]
        if not present:
            return {}
        described = await self._admin.describe_topics(present)
        configs = await self._configs(present)
        out = {}
        for topic in described:
            name = topic["topic"]
            partitions = topic["partitions"]
            tps = [TopicPartition(name, p["partition"]) for p in partitions]
            ends = await self._offsets.end_offsets(tps)
            starts = await self._offsets.beginning_offsets(tps)
            out[name] = TopicState(
                name=name,
                partitions=len(partitions),
                replication_factor=min((len(p["replicas"]) for p in partitions), default=0),
                under_replicated=sum(1 for p in partitions if len(p["isr"]) < len(p["replicas"])),
                configs=configs.get(name, {}),
                records=sum(ends[tp] - starts[tp] for tp in tps),
            )
        return out

    async def _configs(self, names: Sequence[str]) -> dict[str, dict[str, str]]:
        resources = [ConfigResource(ConfigResourceType.TOPIC, n) for n in names]
        out: dict[str, dict[str, str]] = {}
        for response in await self._admin.describe_configs(resources):
            for resource in response.resources:
                _error_code, _message, _type, name, entries, *_ = resource
                out[name] = {entry[0]: entry[1] for entry in entries}
        return out

    async def create(self, specs: Sequence[TopicSpec]) -> dict[str, str | None]:
        """Creates the topics; per name None (created), "exists", or the broker's reason."""
        response: Any = await self._admin.create_topics(
            [
                NewTopic(s.name, s.partitions, s.replication_factor, topic_configs=s.configs)
                for s in specs
            ]
        )
        out: dict[str, str | None] = {}
        for name, code, message, *_ in response.topic_errors:
            if code == 0:
                out[name] = None
            elif code == _TOPIC_EXISTS:
                out[name] = "exists"
            else:
                out[name] = message or for_code(code).__name__
        return out

    async def group_lag(self, group_id: str, topic: str) -> dict[int, int] | None:
        """Records not yet committed by `group_id`, per partition; None: no offsets at all."""
        return await committed_lag(self._admin, self._offsets, group_id, topic)
