"""The actuator's consumer of `sandbox-commands`: commands for different sandboxes are carried
out side by side, those for one sandbox one after the other (a lane per record key), and each
partition is committed at its low watermark (lanes.py).

Why aiokafka's consumer itself and not a FastStream subscriber: FastStream acknowledges a
message by committing the consumer's position (aiokafka's `commit()` without offsets: all that
was fetched), which, with commands finishing out of order, would commit past one still being
carried out, and lose it in a crash. Here the loop owns the consumer: it commits explicit
offsets, pauses fetching while ACTUATOR_MAX_IN_FLIGHT commands are unfinished (backpressure),
and on a rebalance lets the revoked partitions' commands finish for a moment, commits them,
and abandons the rest. Whatever is abandoned, or was past the committed offset in a crash, is
carried out again by the partition's next owner: harmless, as the command ledger skips a
command already carried out and a pause re-reads the sandbox before it calls E2B. The FastStream
broker still publishes the facts and dead letters, and serves probes and metrics.

A command waiting to retry (backoff) sleeps in its own lane: it holds no E2B call slot and
holds up neither its partition nor other sandboxes; only its own sandbox's later commands wait.
It is unfinished, so it counts toward ACTUATOR_MAX_IN_FLIGHT and the watermark stays below it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from enforcer.actuator import metrics
from enforcer.actuator.lanes import Lanes, Watermarks
from enforcer.actuator.retry import Handled
from sandbox_common import topics
from sandbox_common.dead_letters import Record

log = logging.getLogger("enforcer.actuator")

Handle = Callable[[Record], Awaitable[Handled]]
# A lane per sandbox: (partition, record key); a record without a key has a lane of its own.
LaneKey = tuple[TopicPartition, bytes | str]


class Consumer(Protocol):
    """What the loop needs of aiokafka's AIOKafkaConsumer (a fake in unit tests)."""

    def subscribe(self, topics: list[str], *, listener: ConsumerRebalanceListener) -> None: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[Any]]: ...

    async def commit(self, offsets: dict[TopicPartition, int]) -> None: ...

    def assignment(self) -> set[TopicPartition]: ...

    def pause(self, *partitions: TopicPartition) -> None: ...

    def resume(self, *partitions: TopicPartition) -> None: ...


@dataclass(frozen=True)
class LoopOptions:
    max_in_flight: int = 256  # ACTUATOR_MAX_IN_FLIGHT: unfinished commands at most
    commit_interval_seconds: float = 0.5
    # After the use case raised (a store outage): the same command again, after this pause.
    redelivery_pause_seconds: float = 1.0
    # Revoked partitions (and shutdown): how long their commands get to finish.
    release_seconds: float = 5.0
    poll_ms: int = 500
    # No room for this long: the partitions are paused while the consumer keeps polling.
    pause_after_seconds: float = 10.0


@dataclass(frozen=True)
class _Item:
    partition: TopicPartition
    record: Record


class CommandLoop:
    def __init__(
        self,
        consumer: Callable[[], Consumer],
        handle: Handle,
        options: LoopOptions,
        connect: Callable[[Consumer], Awaitable[None]] | None = None,
    ) -> None:
        # Made at start: aiokafka's consumer must be made inside the running event loop.
        self._new_consumer = consumer
        # How the consumer connects (the actuator's keeps trying while Kafka is away).
        self._connect = connect or (lambda c: c.start())
        self._consumer: Consumer = _NoConsumer()
        self._handle = handle
        self._o = options
        self._marks: Watermarks[TopicPartition] = Watermarks()
        self._lanes: Lanes[LaneKey, _Item] = Lanes()
        self._runners: dict[LaneKey, asyncio.Task[None]] = {}
        self._room = asyncio.Event()
        self._held = False
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        """Returns at once: the consumer connects, then fetches, in the loop's own task."""
        self._consumer = self._new_consumer()
        self._consumer.subscribe([topics.COMMANDS], listener=_Rebalance(self))
        self._task = asyncio.create_task(self._run(), name="actuator-commands")

    async def stop(self) -> None:
        """No more fetching; commands in flight get `release_seconds` to finish, then what is
        done is committed and the rest abandoned (redone by the next owner)."""
        self._stopping = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task], timeout=self._o.release_seconds)
        await self.release(self._consumer.assignment())
        await self._consumer.stop()

    async def _run(self) -> None:
        await self._connect(self._consumer)
        last_commit = time.monotonic()
        full_since: float | None = None
        while not self._stopping:
            self._room.clear()  # before counting: a lane that finishes after it sets it again
            room = self._o.max_in_flight - self._marks.unfinished
            try:
                if room < self._fetch_at_least():
                    full_since = full_since or time.monotonic()
                    await self._wait_for_room(time.monotonic() - full_since)
                else:
                    full_since = None
                    await self._fetch(room)
            except KafkaError as exc:  # the broker away, a fetch refused: the next poll retries
                log.warning("fetching commands failed (%r); trying again", exc)
                await asyncio.sleep(self._o.poll_ms / 1000)
            if time.monotonic() - last_commit >= self._o.commit_interval_seconds:
                await self._commit()
                last_commit = time.monotonic()

    async def _fetch(self, room: int) -> None:
        self._hold(False)
        fetched = await self._consumer.getmany(timeout_ms=self._o.poll_ms, max_records=room)
        assigned = self._consumer.assignment()
        for partition, records in fetched.items():
            if partition in assigned:  # not one revoked while the fetch was on its way
                for raw in records:
                    self._dispatch(partition, raw)

    def _fetch_at_least(self) -> int:
        """Room for this many before fetching again: not one record per fetch when busy, and
        after a long stall (paused) a quarter of the bound, not a pause and a resume per
        command (a pause drops what aiokafka had fetched ahead: a resume fetches it again)."""
        bound = self._o.max_in_flight
        return max(1, bound // 4) if self._held else max(1, bound // 16)

    async def _wait_for_room(self, full_for: float) -> None:
        """Backpressure. Fetching stops while there is no room; if that lasts (commands
        retried through an outage), the partitions are paused and the consumer polled all the
        same: a member that stops polling is put out of the group."""
        try:
            async with asyncio.timeout(self._o.poll_ms / 1000):
                await self._room.wait()
        except TimeoutError:
            pass
        if full_for >= self._o.pause_after_seconds:
            self._hold(True)
            await self._consumer.getmany(timeout_ms=0)

    def _hold(self, held: bool) -> None:
        if held and not self._held:
            self._consumer.pause(*self._consumer.assignment())
        elif not held and self._held:
            self._consumer.resume(*self._consumer.assignment())
        self._held = held

    def _dispatch(self, partition: TopicPartition, raw: Any) -> None:
        record = Record(
            raw.topic, raw.partition, raw.offset, raw.value, raw.key, tuple(raw.headers or ())
        )
        self._marks.offer(partition, record.offset)
        key: LaneKey = (partition, raw.key if raw.key is not None else f"@{raw.offset}")
        item = _Item(partition, record)
        if self._lanes.add(key, item):
            self._runners[key] = asyncio.create_task(self._lane(key, item))
        metrics.IN_FLIGHT.set(self._marks.unfinished)

    async def _lane(self, key: LaneKey, first: _Item) -> None:
        item: _Item | None = first
        try:
            while item is not None:
                await self._carry_out(item.record)
                self._marks.finish(item.partition, item.record.offset)
                metrics.IN_FLIGHT.set(self._marks.unfinished)
                self._room.set()
                item = self._lanes.next(key)
        finally:
            if self._runners.get(key) is asyncio.current_task():
                del self._runners[key]

    async def _carry_out(self, record: Record) -> None:
        """Until the use case returns: an error is a store or broker outage, so the same command
        is tried again after a pause (never skipped, and never a hot loop)."""
        while True:
            try:
                handled = await self._handle(record)
            except Exception:
                log.exception(
                    "command at %s[%d]@%d failed; trying it again in %.1fs",
                    record.topic,
                    record.partition,
                    record.offset,
                    self._o.redelivery_pause_seconds,
                )
                await asyncio.sleep(self._o.redelivery_pause_seconds)
                continue
            metrics.PAUSES.labels(outcome=handled.outcome).inc()
            if handled.attempts > 1:
                metrics.RETRIES.inc(handled.attempts - 1)
            return

    async def release(self, partitions: Iterable[TopicPartition]) -> None:
        """Partitions this consumer gives up (revoked, or at shutdown): their lanes get
        `release_seconds` to finish, the low watermark is committed, the rest is abandoned."""
        gone = set(partitions)
        keys = [k for k in self._runners if k[0] in gone]
        runners = [self._runners[k] for k in keys]
        if runners:
            await asyncio.wait(runners, timeout=self._o.release_seconds)
        await self._commit(gone)
        for runner in runners:
            runner.cancel()
        if runners:
            await asyncio.wait(runners, timeout=self._o.release_seconds)
        abandoned = self._marks.unfinished_in(gone)
        if abandoned:
            log.warning(
                "%d commands abandoned on giving up %d partitions: their next owner redoes them",
                abandoned,
                len(gone),
            )
        self._lanes.drop(keys)
        self._marks.forget(gone)
        metrics.IN_FLIGHT.set(self._marks.unfinished)
        self._room.set()

    async def _commit(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        offsets = self._marks.to_commit(partitions)
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except KafkaError as exc:  # a rebalance in progress, a broker away: the next one tries
            log.warning("offsets not committed (%r); retried at the next commit", exc)
            return
        self._marks.committed(offsets)


class _NoConsumer:
    """Before start: nothing assigned, nothing to stop."""

    def subscribe(self, topics: list[str], *, listener: ConsumerRebalanceListener) -> None:
        raise RuntimeError("the command loop makes its consumer at start")

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[Any]]:
        return {}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        return None

    def assignment(self) -> set[TopicPartition]:
        return set()

    def pause(self, *partitions: TopicPartition) -> None:
        return None

    def resume(self, *partitions: TopicPartition) -> None:
        return None


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: CommandLoop) -> None:
        self._loop = loop

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._loop.release(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        return None
