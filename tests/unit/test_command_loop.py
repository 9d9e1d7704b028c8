"""The actuator's command loop (enforcer.actuator.command_loop) over a fake consumer: commands of
different sandboxes side by side, one sandbox's in order, offsets committed only below the
oldest unfinished command, fetching paused at the bound, revoked partitions released."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaConnectionError

from enforcer.actuator.command_loop import CommandLoop, LoopOptions
from enforcer.actuator.retry import Handled
from sandbox_common import topics
from sandbox_common.dead_letters import Record

TP = TopicPartition(topics.COMMANDS, 0)


@dataclass(frozen=True)
class Raw:
    offset: int
    key: bytes | None
    topic: str = topics.COMMANDS
    partition: int = 0
    value: bytes = b"{}"
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass
class FakeConsumer:
    queue: deque[Raw]
    fetch_errors: int = 0  # the next getmany calls that raise (the broker away)
    commits: list[dict[TopicPartition, int]] = field(default_factory=list)
    held: set[TopicPartition] = field(default_factory=set)
    pauses: int = 0
    stopped: bool = False
    listener: ConsumerRebalanceListener | None = None

    def subscribe(self, topics: list[str], *, listener: ConsumerRebalanceListener) -> None:
        self.listener = listener

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self.stopped = True

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[Any]]:
        if self.fetch_errors > 0:
            self.fetch_errors -= 1
            raise KafkaConnectionError("broker away")
        out: list[Raw] = []
        while (
            self.queue and TP not in self.held and (max_records is None or len(out) < max_records)
        ):
            out.append(self.queue.popleft())
        if not out:
            await asyncio.sleep(max(timeout_ms, 1) / 1000)
        return {TP: out} if out else {}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))

    def assignment(self) -> set[TopicPartition]:
        return {TP}

    def pause(self, *partitions: TopicPartition) -> None:
        self.pauses += 1
        self.held |= set(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self.held -= set(partitions)

    @property
    def committed(self) -> int | None:
        return self.commits[-1][TP] if self.commits else None


@dataclass
class Gates:
    """The use case: each record waits for its sandbox's gate (open unless closed here)."""

    closed: dict[bytes, asyncio.Event] = field(default_factory=dict)
    started: list[int] = field(default_factory=list)
    done: list[int] = field(default_factory=list)
    failures: dict[int, int] = field(default_factory=dict)  # offset -> times it raises first

    def close(self, key: bytes) -> None:
        self.closed[key] = asyncio.Event()

    def open(self, key: bytes) -> None:
        self.closed[key].set()

    async def handle(self, record: Record) -> Handled:
        self.started.append(record.offset)
        if self.failures.get(record.offset, 0) > 0:
            self.failures[record.offset] -= 1
            raise ConnectionError("redis down")
        gate = self.closed.get(record.key or b"")
        if gate is not None:
            await gate.wait()
        self.done.append(record.offset)
        return Handled("paused", 1)


FAST = LoopOptions(
    max_in_flight=100,
    commit_interval_seconds=0.0,
    redelivery_pause_seconds=0.0,
    release_seconds=0.05,
    poll_ms=5,
    pause_after_seconds=0.0,
)


@asynccontextmanager
async def running(
    records: list[Raw], gates: Gates, options: LoopOptions = FAST
) -> AsyncIterator[tuple[CommandLoop, FakeConsumer]]:
    consumer = FakeConsumer(deque(records))
    loop = CommandLoop(lambda: consumer, gates.handle, options)
    await loop.start()
    try:
        yield loop, consumer
    finally:
        await loop.stop()


async def soon(check: Callable[[], bool], within: float = 2.0) -> None:
    for _ in range(int(within / 0.005)):
        if check():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("not within the time")


async def test_a_waiting_command_holds_up_neither_its_partition_nor_other_sandboxes() -> None:
    gates = Gates()
    gates.close(b"a")
    records = [Raw(0, b"a"), Raw(1, b"b"), Raw(2, b"c")]
    async with running(records, gates) as (_, consumer):
        await soon(lambda: gates.done == [1, 2])
        await asyncio.sleep(0.02)  # commits after b and c
        assert consumer.committed == 0  # not past a, still unfinished
        gates.open(b"a")
        await soon(lambda: consumer.committed == 3)


async def test_one_sandbox_commands_run_one_at_a_time_in_order() -> None:
    gates = Gates()
    gates.close(b"a")
    async with running([Raw(0, b"a"), Raw(1, b"a"), Raw(2, b"b")], gates) as (_, consumer):
        await soon(lambda: gates.done == [2])
        assert gates.started == [0, 2]  # a's second waits for its first
        gates.open(b"a")
        await soon(lambda: gates.done == [2, 0, 1])
        await soon(lambda: consumer.committed == 3)


async def test_fetching_pauses_at_the_bound_of_commands_in_flight() -> None:
    gates = Gates()
    keys = [f"s{i}".encode() for i in range(5)]
    for key in keys:
        gates.close(key)
    records = [Raw(i, key) for i, key in enumerate(keys)]
    options = LoopOptions(**{**FAST.__dict__, "max_in_flight": 2})
    async with running(records, gates, options) as (_, consumer):
        await soon(lambda: gates.started == [0, 1] and consumer.pauses > 0)
        await asyncio.sleep(0.03)
        assert gates.started == [0, 1]
        gates.open(keys[1])
        await soon(lambda: gates.started == [0, 1, 2])
        assert consumer.committed == 0
        for key in keys:
            gates.open(key)
        await soon(lambda: consumer.committed == 5)


async def test_a_failing_use_case_is_tried_again_and_never_committed_past() -> None:
    gates = Gates(failures={0: 3})
    async with running([Raw(0, b"a"), Raw(1, b"b")], gates) as (_, consumer):
        await soon(lambda: gates.done == [1, 0] or gates.done == [0, 1])
        assert gates.started.count(0) == 4
        await soon(lambda: consumer.committed == 2)
        assert all(c[TP] in (0, 2) for c in consumer.commits)


async def test_a_revoked_partition_commits_what_is_done_and_abandons_the_rest() -> None:
    gates = Gates()
    gates.close(b"a")
    async with running([Raw(0, b"b"), Raw(1, b"a"), Raw(2, b"c")], gates) as (loop, consumer):
        await soon(lambda: sorted(gates.done) == [0, 2])
        await loop.release({TP})
        assert consumer.committed == 1  # b is done, a was abandoned: its next owner redoes it
        gates.open(b"a")
        await asyncio.sleep(0.02)
        assert 1 not in gates.done  # cancelled, not finished behind the new owner's back


async def test_stopping_waits_for_commands_in_flight_and_commits_them() -> None:
    gates = Gates()
    gates.close(b"a")
    consumer = FakeConsumer(deque([Raw(0, b"a")]))
    options = LoopOptions(**{**FAST.__dict__, "release_seconds": 1.0})
    loop = CommandLoop(lambda: consumer, gates.handle, options)
    await loop.start()
    await soon(lambda: gates.started == [0])
    asyncio.get_running_loop().call_later(0.05, gates.open, b"a")
    await loop.stop()
    assert (gates.done, consumer.committed, consumer.stopped) == ([0], 1, True)


async def test_a_failed_fetch_is_tried_again_not_the_end_of_the_loop() -> None:
    gates = Gates()
    consumer = FakeConsumer(deque([Raw(0, b"a")]), fetch_errors=3)
    loop = CommandLoop(lambda: consumer, gates.handle, FAST)
    await loop.start()
    try:
        await soon(lambda: gates.done == [0])
        assert loop.running
    finally:
        await loop.stop()
