"""Pure bookkeeping of the actuator's concurrent command path (no Kafka, no asyncio; the command
loop in consumer.py drives it, unit and property tests check it):

- `Watermarks`: per partition, the offsets handed out and which of them are finished. The
  offset that may be committed is the low watermark: the first unfinished offset, or the one
  after the last offset handed out when every one is finished. Committing it never skips a
  command still being carried out, however out of order the commands finish.
- `Lanes`: one queue per sandbox. Commands for different sandboxes run side by side; those for
  the same sandbox run one after the other, in the order the partition holds them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

P = TypeVar("P", bound=Hashable)  # a partition
K = TypeVar("K", bound=Hashable)  # a lane's key
T = TypeVar("T")  # what waits in a lane


class PartitionOffsets:
    """The offsets of one partition handed out in fetch order (ascending), and the finished
    ones among them. Memory: the span from the low watermark to the last offset handed out."""

    def __init__(self) -> None:
        self._pending: deque[int] = deque()
        self._finished: set[int] = set()
        self._after_last: int | None = None

    def offer(self, offset: int) -> None:
        if self._after_last is not None and offset < self._after_last:
            raise ValueError(f"offset {offset} handed out after {self._after_last - 1}")
        self._pending.append(offset)
        self._after_last = offset + 1

    def finish(self, offset: int) -> None:
        self._finished.add(offset)
        while self._pending and self._pending[0] in self._finished:
            self._finished.discard(self._pending.popleft())

    @property
    def unfinished(self) -> int:
        return len(self._pending) - len(self._finished)

    def low_watermark(self) -> int | None:
        """The offset to commit: everything below it is finished. None: nothing handed out."""
        return self._pending[0] if self._pending else self._after_last


class Watermarks(Generic[P]):
    """Every assigned partition's offsets, and what was last committed of each."""

    def __init__(self) -> None:
        self._partitions: dict[P, PartitionOffsets] = {}
        self._committed: dict[P, int] = {}

    def offer(self, partition: P, offset: int) -> None:
        self._partitions.setdefault(partition, PartitionOffsets()).offer(offset)

    def finish(self, partition: P, offset: int) -> None:
        offsets = self._partitions.get(partition)
        if offsets is not None:  # a revoked partition's late finish is forgotten with it
            offsets.finish(offset)

    @property
    def unfinished(self) -> int:
        return sum(p.unfinished for p in self._partitions.values())

    def unfinished_in(self, partitions: Iterable[P]) -> int:
        return sum(self._partitions[p].unfinished for p in partitions if p in self._partitions)

    def to_commit(self, partitions: Iterable[P] | None = None) -> dict[P, int]:
        """Low watermarks that moved since they were last committed (`committed`)."""
        chosen = self._partitions if partitions is None else partitions
        out: dict[P, int] = {}
        for partition in chosen:
            offsets = self._partitions.get(partition)
            mark = offsets.low_watermark() if offsets is not None else None
            if mark is not None and self._committed.get(partition) != mark:
                out[partition] = mark
        return out

    def committed(self, offsets: dict[P, int]) -> None:
        self._committed.update(offsets)

    def forget(self, partitions: Iterable[P]) -> None:
        """A revoked partition: its next owner starts from what was committed."""
        for partition in partitions:
            self._partitions.pop(partition, None)
            self._committed.pop(partition, None)


class Lanes(Generic[K, T]):
    """Per key a FIFO of items; the head is the one running. `add` says whether the key had no
    lane (so the caller starts a runner for it), `next` ends the head and hands over the one
    after it (None: the lane is gone)."""

    def __init__(self) -> None:
        self._queues: dict[K, deque[T]] = {}

    def add(self, key: K, item: T) -> bool:
        queue = self._queues.get(key)
        if queue is None:
            self._queues[key] = deque([item])
            return True
        queue.append(item)
        return False

    def next(self, key: K) -> T | None:
        queue = self._queues.get(key)
        if queue is None:  # dropped meanwhile (its partition was revoked)
            return None
        queue.popleft()
        if queue:
            return queue[0]
        del self._queues[key]
        return None

    def drop(self, keys: Iterable[K]) -> None:
        for key in keys:
            self._queues.pop(key, None)

    def keys(self) -> list[K]:
        return list(self._queues)

    def __len__(self) -> int:
        return len(self._queues)
