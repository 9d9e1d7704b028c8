"""The consumer's side of the pipeline: commit written batches' offsets, seek partitions back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from projector.handlers import next_offsets
from sandbox_common.dead_letters import Record

log = logging.getLogger(__name__)
# Least time between two commits. Each costs the broker an append to __consumer_offsets; at a few
# dozen facts per batch, one per batch was a visible share of the broker's CPU. Redelivery after a
# crash grows by at most this much, and re-applying it changes nothing.
COMMIT_INTERVAL_SECONDS = 0.5


class ConsumerOffsets:
    """Commits in the background, one commit in flight at a time and at most one per interval,
    each carrying the newest offsets of every batch written since the one before.

    A commit takes a broker round trip (7-8 ms under load, measured), and waiting for it held the
    next batch's writes back by as much: at 1,000 facts/s that was half of each batch's cycle.
    Committing later than the write is safe for the same reason committing after it is: a batch
    delivered again after a crash changes nothing when re-applied.
    """

    def __init__(
        self, consumer: AIOKafkaConsumer, interval_seconds: float = COMMIT_INTERVAL_SECONDS
    ) -> None:
        self.consumer = consumer
        self._interval = interval_seconds
        self._closing = asyncio.Event()  # shutdown: the interval is cut short
        self._pending: dict[TopicPartition, int] = {}
        self._committing: asyncio.Task[None] | None = None

    async def commit(self, records: Sequence[Record]) -> None:
        """Exactly these records' offsets (not the consumer's position: the next batch has been
        fetched already), once the commits before them are done. Returns without waiting."""
        for topic, partition, offset in next_offsets(records):
            tp = TopicPartition(topic, partition)
            self._pending[tp] = max(offset, self._pending.get(tp, 0))
        if self._committing is None:
            self._committing = asyncio.create_task(self._commit_pending(), name="offset-commit")

    async def flush(self) -> None:
        """Commits what is pending now, without the interval (shutdown), and waits for it."""
        self._closing.set()
        if self._pending and self._committing is None:
            self._committing = asyncio.create_task(self._commit_pending(), name="offset-commit")
        while self._committing is not None:
            await asyncio.shield(self._committing)

    async def _commit_pending(self) -> None:
        try:
            while self._pending:
                offsets, self._pending = self._pending, {}
                # A partition taken away meanwhile is delivered again elsewhere: harmless.
                assigned = self.consumer.assignment()
                offsets = {tp: o for tp, o in offsets.items() if tp in assigned}
                if not offsets:
                    continue
                try:
                    await self.consumer.commit(offsets)
                except KafkaError as exc:
                    log.warning("offset commit failed, the batch will be delivered again: %r", exc)
                with contextlib.suppress(TimeoutError):  # batches written meanwhile: one commit
                    await asyncio.wait_for(self._closing.wait(), self._interval)
        finally:
            self._committing = None

    def seek(self, positions: Mapping[tuple[str, int], int]) -> None:
        """Seek each of these partitions (those still assigned) back to its offset."""
        assigned = self.consumer.assignment()
        for (topic, partition), offset in positions.items():
            tp = TopicPartition(topic, partition)
            if tp in assigned:
                self.consumer.seek(tp, offset)
