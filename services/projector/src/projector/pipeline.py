"""Folds batch N+1 while batch N is written: Python and PostgreSQL work at the same time.

Each batch is still written as one PostgreSQL transaction (states, history, offsets), then to
Redis, and only then are its own offsets committed to Kafka, batch after batch in order. What
overlaps is the fold of the next batch (parse, evolve, rows) with those writes. It is folded
onto the states the batch in flight will leave (`pending`): if that batch is then not written
as folded, the next one is folded again from what PostgreSQL holds.

A write that fails is retried by the batch-at-a-time path (`retry`: backoff, record by record,
dead letters). If that gives up too, the partitions are sought back to the failed batch, and a
batch fetched meanwhile is sought back as well: nothing is committed past an unwritten record.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from projector.domain import SandboxState
from projector.handlers import (
    BatchOutcome,
    DeadLetters,
    Folded,
    ReadModel,
    StateStore,
    fold_batch,
    parse,
    write_folded,
)
from sandbox_common.dead_letters import Record

log = logging.getLogger(__name__)


class Written(enum.Enum):
    AS_FOLDED = "as folded"
    REDONE = "redone"  # written by the retry path: its states may differ from the fold's
    FAILED = "failed"  # not written; its partitions were sought back


class StateReader(Protocol):
    async def states(self, sandbox_ids: Sequence[str]) -> dict[str, tuple[SandboxState, int]]: ...


class Offsets(Protocol):
    """The consumer's side: commit a batch's own offsets, seek partitions back."""

    async def commit(self, records: Sequence[Record]) -> None: ...

    def rewind(self, records: Sequence[Record], skip: set[tuple[str, int]]) -> None: ...


class Pipeline:
    def __init__(
        self,
        reader: StateReader,
        store: StateStore,
        read_model: ReadModel,
        dead_letters: DeadLetters,
        retry: Callable[[Sequence[Record]], Awaitable[None]],
        observe: Callable[[BatchOutcome, Sequence[Record], float], None],
    ) -> None:
        self._reader = reader
        self._store = store
        self._read_model = read_model
        self._dead_letters = dead_letters
        self._retry = retry
        self._observe = observe
        self._inflight: asyncio.Task[Written] | None = None
        self._pending: dict[str, tuple[SandboxState, int]] = {}
        # Bumped when a failed batch's partitions are sought back; with the partitions it rewound.
        self._epoch = 0
        self._rewound: set[tuple[str, int]] = set()

    async def submit(self, records: Sequence[Record], offsets: Offsets) -> None:
        """Returns once the batch before this one is written and this one's write started."""
        epoch = self._epoch
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            folded: Folded | None = await self._fold(records)
        except Exception:  # reading states failed: the batch-at-a-time path retries it
            log.warning("folding ahead failed; projecting the batch on its own", exc_info=True)
            folded = None
        before = await self.drain()
        if self._epoch != epoch:
            # A batch before this one failed after this one was fetched: fetch it again later.
            offsets.rewind(records, skip=self._rewound)
            return
        if folded is None or before in (Written.REDONE, Written.FAILED):
            self._pending = {}
            try:
                await self._retry(records)
            except BaseException:
                offsets.rewind(records, skip=set())
                raise
            await offsets.commit(records)
            return
        self._pending = folded.states()
        self._inflight = asyncio.create_task(
            self._write(folded, records, offsets, started), name="projector-write"
        )

    async def drain(self) -> Written | None:
        """Waits for the batch in flight (also on shutdown, so its offsets get committed)."""
        if self._inflight is None:
            return None
        try:
            return await self._inflight
        finally:
            self._inflight = None

    async def _fold(self, records: Sequence[Record]) -> Folded:
        facts, poison = parse(records)
        ids = sorted({p.fact.sandbox_id for p in facts})
        current = {sid: self._pending[sid] for sid in ids if sid in self._pending}
        current.update(await self._reader.states([sid for sid in ids if sid not in current]))
        return fold_batch(records, facts, poison, current)

    async def _write(
        self, folded: Folded, records: Sequence[Record], offsets: Offsets, started: float
    ) -> Written:
        written = Written.AS_FOLDED
        try:
            await write_folded(folded, self._store, self._read_model, self._dead_letters)
            self._observe(folded.outcome, records, asyncio.get_running_loop().time() - started)
        except Exception:
            log.warning("writing a folded batch failed; retrying it on its own", exc_info=True)
            self._pending = {}
            try:
                await self._retry(records)
            except Exception:
                log.exception("projection failed; rewinding the batch")
                self._epoch += 1
                self._rewound = {(r.topic, r.partition) for r in records}
                offsets.rewind(records, skip=set())
                return Written.FAILED
            written = Written.REDONE
        await offsets.commit(records)
        return written
