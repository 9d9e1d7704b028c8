"""Three batches at once: batch N+2 is folded while N+1 is written to PostgreSQL and N to Redis.

Each batch is still written as one PostgreSQL transaction (states, history, offsets), then to
Redis, and only then are its own offsets committed to Kafka, batch after batch in order. What
overlaps:
- the fold of the next batch (parse, evolve, rows), onto the states the batch before it will
  leave (`pending`);
- a batch's PostgreSQL write, which starts once the batch before it is in PostgreSQL, with that
  batch's Redis write.
Measured with bench/projector_throughput.py, the Redis write was a third of a batch's write time,
and the next batch's PostgreSQL write waited for it.

If a batch is not stored as folded, the next one is folded again from what PostgreSQL holds: it
goes through the batch-at-a-time path (retries.py: backoff, record by record, dead letters),
after everything before it is done. If that path gives up too, the batch's partitions are
sought back to it. A batch fetched before such a seek then comes through with records past the
position sought to: it is refused and its partitions sought back as well, and the records come
again. So nothing is committed past an unwritten record, and nothing fetched after a seek is
refused.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from projector import metrics
from projector.domain import SandboxState
from projector.handlers import (
    Folded,
    Projection,
    fold_batch,
    parse,
    publish_folded,
    sandbox_ids,
    store_folded,
)
from sandbox_common.dead_letters import Record

log = logging.getLogger(__name__)

Partition = tuple[str, int]


class StateReader(Protocol):
    async def states(self, sandbox_ids: Sequence[str]) -> dict[str, tuple[SandboxState, int]]: ...


class Retry(Protocol):
    """The batch-at-a-time path (retries.RetryingProjection)."""

    async def project(self, records: Sequence[Record]) -> None: ...


class Offsets(Protocol):
    """The consumer's side: commit a batch's own offsets, seek partitions back."""

    async def commit(self, records: Sequence[Record]) -> None: ...

    def seek(self, positions: Mapping[Partition, int]) -> None: ...


@dataclass(frozen=True, slots=True)
class _Batch:
    folded: Folded
    records: Sequence[Record]
    offsets: Offsets
    started: float  # loop time at submit: the seconds observed for the batch include its fold


@dataclass(frozen=True)
class _Write:
    task: asyncio.Task[None]
    # True once the batch is in PostgreSQL as folded; False if it is not (the task then writes it
    # the batch-at-a-time way, or seeks it back).
    stored: asyncio.Future[bool]


@dataclass(eq=False)
class Pipeline:
    reader: StateReader
    to: Projection
    retry: Retry
    _inflight: _Write | None = field(default=None, init=False)
    _pending: dict[str, tuple[SandboxState, int]] = field(default_factory=dict, init=False)
    # Partitions sought back, and to where: until their records come from there again, a batch
    # with later records on them was fetched before the seek.
    _sought: dict[Partition, int] = field(default_factory=dict, init=False)

    async def submit(self, records: Sequence[Record], offsets: Offsets) -> None:
        """Returns once the batch before this one is in PostgreSQL and this one's write started."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            folded: Folded | None = await self._fold(records)
        except Exception:  # reading states failed: the batch-at-a-time path retries it
            log.warning("folding ahead failed; projecting the batch on its own", exc_info=True)
            folded = None
        before = self._inflight
        if folded is not None and (before is None or await asyncio.shield(before.stored)):
            self._start(_Batch(folded, records, offsets, started), before)
            return
        await self.drain()
        if not self._admit(records, offsets):
            return
        self._pending = {}  # written the batch-at-a-time way: the next one reads its states
        try:
            await self.retry.project(records)
        except BaseException:
            self._refuse(records, offsets)
            raise
        await offsets.commit(records)

    async def drain(self) -> None:
        """Waits for the batches in flight (also on shutdown, so their offsets get committed)."""
        if self._inflight is None:
            return
        try:
            await self._inflight.task
        finally:
            self._inflight = None

    async def _fold(self, records: Sequence[Record]) -> Folded:
        facts, poison = parse(records)
        ids = sandbox_ids(facts)
        current = {sid: self._pending[sid] for sid in ids if sid in self._pending}
        current.update(await self.reader.states([sid for sid in ids if sid not in current]))
        return fold_batch(records, facts, poison, current, self.to.rule)

    def _start(self, batch: _Batch, before: _Write | None) -> None:
        self._pending = batch.folded.states()
        stored: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(self._write(batch, before, stored), name="projector-write")
        task.add_done_callback(lambda _: _settle(stored))
        self._inflight = _Write(task, stored)

    async def _write(
        self, batch: _Batch, before: _Write | None, stored: asyncio.Future[bool]
    ) -> None:
        folded, records, offsets = batch.folded, batch.records, batch.offsets
        try:
            folded = await store_folded(folded, self.to)
            stored.set_result(True)
        except Exception:
            log.warning("storing a folded batch failed; retrying it on its own", exc_info=True)
            self._pending = {}
            stored.set_result(False)
        if before is not None:
            await before.task  # Redis and the offset commits stay in batch order
        if not self._admit(records, offsets):
            return
        if stored.result():
            try:
                await publish_folded(folded, self.to)
            except Exception:
                log.warning(
                    "publishing a stored batch failed; retrying it on its own", exc_info=True
                )
            else:
                seconds = asyncio.get_running_loop().time() - batch.started
                metrics.observe_batch(folded.outcome, records, seconds)
                await offsets.commit(records)
                return
        try:
            await self.retry.project(records)
        except Exception:
            log.exception("projection failed; seeking the batch back")
            self._refuse(records, offsets)
            return
        await offsets.commit(records)

    def _admit(self, records: Sequence[Record], offsets: Offsets) -> bool:
        """Whether the batch may be written and committed: called once every batch before it is
        done. A batch fetched before one of its partitions was sought back is refused."""
        firsts = _firsts(records)
        if any(first > self._sought[p] for p, first in firsts.items() if p in self._sought):
            self._refuse(records, offsets)
            return False
        for p in firsts:
            self._sought.pop(p, None)  # its records come from where it was sought to again
        return True

    def _refuse(self, records: Sequence[Record], offsets: Offsets) -> None:
        """Seeks the batch's partitions back to its first records, or to where they were sought
        to before if that is earlier; nothing of it is committed."""
        firsts = _firsts(records)
        for p, first in firsts.items():
            self._sought[p] = min(first, self._sought.get(p, first))
        offsets.seek({p: self._sought[p] for p in firsts})


def _settle(stored: asyncio.Future[bool]) -> None:
    """A write task cancelled before it said whether the batch is stored: the next batch must
    not wait for it forever."""
    if not stored.done():
        stored.set_result(False)


def _firsts(records: Sequence[Record]) -> dict[Partition, int]:
    firsts: dict[Partition, int] = {}
    for r in records:
        p = (r.topic, r.partition)
        if r.offset < firsts.get(p, r.offset + 1):
            firsts[p] = r.offset
    return firsts
