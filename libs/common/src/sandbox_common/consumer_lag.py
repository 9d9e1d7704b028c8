"""Consumer lag as a Prometheus gauge: records on the topic that the group has not committed yet,
per partition, measured every few seconds from the group's committed offsets.

Measured from committed offsets (not from the consumer's own position) so that a consumer that
hangs, or a group with no consumer at all, still shows its lag growing: that is the case the
alert is for. Every replica of a group reports the same numbers; aggregate with max(), not sum().
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client import Gauge

from sandbox_common.kafka_connection import KafkaConnection
from sandbox_common.tasks import cancel_and_wait

log = logging.getLogger(__name__)

LAG = Gauge(
    "kafka_consumer_lag_records",
    "Records on a partition not yet committed by a consumer group (end offset - committed)",
    ["group", "topic", "partition"],
)


class LagMonitor:
    """start() in a service's startup hook, stop() at shutdown. Never raises: a broker outage
    leaves the last values and logs once until the next success."""

    def __init__(
        self, connection: KafkaConnection, group_id: str, topic: str, interval: float = 15.0
    ) -> None:
        self._connection, self._group, self._topic = connection, group_id, topic
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"lag-{self._group}")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def _run(self) -> None:
        kafka = self._connection.client_kwargs()
        admin = AIOKafkaAdminClient(**kafka, request_timeout_ms=10000)
        offsets = AIOKafkaConsumer(**kafka, enable_auto_commit=False)
        started = False
        try:
            while True:
                try:
                    if not started:
                        await admin.start()
                        await offsets.start()
                        started = True
                    await self.measure(admin, offsets)
                    self._failing = False
                except Exception as exc:  # measuring is best effort; the service runs on
                    if not self._failing:
                        log.warning("consumer lag of %s not measured: %r", self._group, exc)
                    self._failing = True
                await asyncio.sleep(self._interval)
        finally:
            # Closing a client that never connected may fail: nothing to release then.
            with contextlib.suppress(Exception):
                await offsets.stop()
            with contextlib.suppress(Exception):
                await admin.close()

    async def measure(
        self, admin: AIOKafkaAdminClient, offsets: AIOKafkaConsumer
    ) -> dict[int, int]:
        lag = await committed_lag(admin, offsets, self._group, self._topic) or {}
        for partition, records in lag.items():
            LAG.labels(group=self._group, topic=self._topic, partition=str(partition)).set(records)
        return lag


async def committed_lag(
    admin: AIOKafkaAdminClient, offsets: AIOKafkaConsumer, group_id: str, topic: str
) -> dict[int, int] | None:
    """Records of `topic` not yet committed by `group_id`, per partition; None: the group has
    no committed offset there (never ran, or its offsets expired)."""
    committed = {
        tp: meta.offset
        for tp, meta in (await admin.list_consumer_group_offsets(group_id)).items()
        if tp.topic == topic and meta.offset >= 0
    }
    if not committed:
        return None
    ends: dict[TopicPartition, int] = await offsets.end_offsets(list(committed))
    return {tp.partition: max(0, ends[tp] - offset) for tp, offset in committed.items()}
