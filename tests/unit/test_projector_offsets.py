"""The projector's offset committer: in the background, in order, coalesced, never past what it
was given, and everything pending committed on shutdown."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from projector.adapters.kafka_offsets import ConsumerOffsets
from sandbox_common.dead_letters import Record

T = "sandbox-lifecycle"


class FakeConsumer:
    def __init__(self, assigned: set[TopicPartition], fail_first: bool = False) -> None:
        self.assigned = assigned
        self.commits: list[dict[TopicPartition, int]] = []
        self.seeks: list[tuple[TopicPartition, int]] = []
        self.fail_first = fail_first
        self.gate = asyncio.Event()
        self.gate.set()

    def assignment(self) -> set[TopicPartition]:
        return self.assigned

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        await self.gate.wait()
        if self.fail_first:
            self.fail_first = False
            raise KafkaError("coordinator moved")
        self.commits.append(dict(offsets))


def _records(partition: int, *offsets: int) -> list[Record]:
    return [Record(T, partition, o, b"{}") for o in offsets]


def _offsets(fake: FakeConsumer, interval: float = 0.0) -> ConsumerOffsets:
    return ConsumerOffsets(cast(AIOKafkaConsumer, cast(Any, fake)), interval_seconds=interval)


async def test_commit_returns_before_the_broker_answers_and_batches_coalesce() -> None:
    fake = FakeConsumer({TopicPartition(T, 0), TopicPartition(T, 1)})
    fake.gate.clear()  # the broker is slow
    offsets = _offsets(fake)
    await asyncio.wait_for(offsets.commit(_records(0, 10, 11)), 0.1)  # not blocked by it
    await asyncio.sleep(0)
    await offsets.commit(_records(0, 12))
    await offsets.commit(_records(1, 5))
    fake.gate.set()
    await offsets.flush()
    assert fake.commits == [
        {TopicPartition(T, 0): 12},
        {TopicPartition(T, 0): 13, TopicPartition(T, 1): 6},
    ]


async def test_a_partition_taken_away_is_not_committed_and_a_failure_is_not_fatal() -> None:
    fake = FakeConsumer({TopicPartition(T, 0)}, fail_first=True)
    offsets = _offsets(fake)
    await offsets.commit(_records(0, 1))
    await offsets.flush()
    await offsets.commit(_records(0, 2))
    await offsets.commit(_records(3, 7))  # not assigned here any more
    await offsets.flush()
    assert fake.commits == [{TopicPartition(T, 0): 3}]


async def test_the_interval_holds_commits_back_but_shutdown_does_not_wait_for_it() -> None:
    fake = FakeConsumer({TopicPartition(T, 0)})
    offsets = _offsets(fake, interval=30.0)
    await offsets.commit(_records(0, 1))
    await asyncio.sleep(0.01)
    await offsets.commit(_records(0, 2))
    await offsets.commit(_records(0, 3))
    await asyncio.sleep(0.01)
    assert fake.commits == [{TopicPartition(T, 0): 2}]  # the others wait for the interval
    await asyncio.wait_for(offsets.flush(), 1.0)
    assert fake.commits == [{TopicPartition(T, 0): 2}, {TopicPartition(T, 0): 4}]


async def test_seek_moves_only_partitions_still_assigned() -> None:
    fake = FakeConsumer({TopicPartition(T, 0)})
    _offsets(fake).seek({(T, 0): 5, (T, 1): 7})  # partition 1 was taken away meanwhile
    assert fake.seeks == [(TopicPartition(T, 0), 5)]
