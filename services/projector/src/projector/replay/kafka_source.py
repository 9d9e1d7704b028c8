"""Reads a topic's partitions between two offset maps, fast: big fetches, no consumer group,
no commits. The raw records are handed over in batches; decoding is the fold's job."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from sandbox_common.kafka_connection import KafkaConnection

Offsets = dict[int, int]  # partition -> offset


class TopicReader:
    def __init__(self, connection: KafkaConnection, topic: str) -> None:
        self.topic = topic
        self._connection = connection
        self._consumer = AIOKafkaConsumer(
            **connection.client_kwargs(),
            enable_auto_commit=False,
            # Large fetches: the broker hands over megabytes per request instead of a few records.
            fetch_max_bytes=64 * 1024 * 1024,
            max_partition_fetch_bytes=16 * 1024 * 1024,
            fetch_max_wait_ms=100,
            client_id="sandboxctl-replay",
        )
        self._partitions: list[TopicPartition] = []

    async def __aenter__(self) -> TopicReader:
        admin = AIOKafkaAdminClient(**self._connection.client_kwargs())
        await admin.start()
        try:
            (described,) = await admin.describe_topics([self.topic])
        finally:
            await admin.close()
        found = described.get("partitions") or []
        if not found:
            raise LookupError(
                f"topic {self.topic!r} not found on {self._connection.bootstrap_servers}"
            )
        self._partitions = [TopicPartition(self.topic, p["partition"]) for p in found]
        await self._consumer.start()
        self._consumer.assign(self._partitions)
        return self

    async def __aexit__(self, *exc: object) -> None:
        # aiokafka#647: a stop soon after start can raise CancelledError from its own task.
        with contextlib.suppress(asyncio.CancelledError):
            await self._consumer.stop()

    async def ends(self) -> Offsets:
        ends = await self._consumer.end_offsets(self._partitions)
        return {tp.partition: offset for tp, offset in ends.items()}

    async def starts(self) -> Offsets:
        starts = await self._consumer.beginning_offsets(self._partitions)
        return {tp.partition: offset for tp, offset in starts.items()}

    async def read(self, start: Offsets, end: Offsets) -> AsyncIterator[list[Any]]:
        """Batches of records with start[p] <= offset < end[p], partitions interleaved."""
        wanted = {
            tp: end.get(tp.partition, 0)
            for tp in self._partitions
            if end.get(tp.partition, 0) > start.get(tp.partition, 0)
        }
        if not wanted:
            return
        self._consumer.assign(list(wanted))
        for tp in wanted:
            self._consumer.seek(tp, start.get(tp.partition, 0))
        while wanted:
            fetched = await self._consumer.getmany(timeout_ms=1000, max_records=20_000)
            batch: list[Any] = []
            for tp, records in fetched.items():
                stop = wanted.get(tp)
                if stop is None:
                    continue
                batch.extend(r for r in records if r.offset < stop)
                if (records and records[-1].offset + 1 >= stop) or (
                    await self._consumer.position(tp) >= stop
                ):
                    del wanted[tp]
                    self._consumer.pause(tp)
            if batch:
                yield batch
            elif not fetched:
                # Nothing came back: a partition whose end lies past a gap (compaction, aborted
                # transactions) is done once its position reached the end.
                for tp in list(wanted):
                    if await self._consumer.position(tp) >= wanted[tp]:
                        del wanted[tp]
        self._consumer.resume(*self._consumer.paused())
