"""The dead-letter topic's record shape: the original bytes, and headers saying why and where
from. One layout for every service that dead-letters, so one tool reads them all."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

REASON = "dlq-reason"
ORIGINAL_TOPIC = "dlq-original-topic"
ORIGINAL_PARTITION = "dlq-original-partition"
ORIGINAL_OFFSET = "dlq-original-offset"
# Set by `sandboxctl dlq redrive` on the record it republishes, and carried over when that
# record is dead-lettered again: a record redriven this many times is not redriven any more.
REDRIVE_COUNT = "dlq-redrive-count"
_MAX_REASON = 1000


@dataclass(frozen=True)
class Record:
    """A consumed Kafka record, as far as processing and dead-lettering care."""

    topic: str
    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()


class DeadLetterSink(Protocol):
    """Where a record that cannot be processed goes, with the reason (sandbox-lifecycle.dlq)."""

    async def send(self, record: Record, reason: str) -> None: ...


def redrive_count(headers: Sequence[tuple[str, bytes]]) -> int:
    for name, value in headers:
        if name == REDRIVE_COUNT:
            try:
                return int(value.decode())
            except ValueError:
                return 0
    return 0


def headers(record: Record, reason: str) -> dict[str, str]:
    out = {
        REASON: reason[:_MAX_REASON],
        ORIGINAL_TOPIC: record.topic,
        ORIGINAL_PARTITION: str(record.partition),
        ORIGINAL_OFFSET: str(record.offset),
    }
    count = redrive_count(record.headers)
    if count:
        out[REDRIVE_COUNT] = str(count)
    return out
