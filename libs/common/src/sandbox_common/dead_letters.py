"""The dead-letter topic's record shape: the original bytes, and headers saying why and where
from. One layout for every service that dead-letters, so one tool reads them all."""

from __future__ import annotations

from dataclasses import dataclass

REASON = "dlq-reason"
ORIGINAL_TOPIC = "dlq-original-topic"
ORIGINAL_PARTITION = "dlq-original-partition"
ORIGINAL_OFFSET = "dlq-original-offset"
_MAX_REASON = 1000


@dataclass(frozen=True)
class Record:
    """A consumed Kafka record, as far as processing and dead-lettering care."""

    topic: str
    partition: int
    offset: int
    value: bytes | None


def headers(record: Record, reason: str) -> dict[str, str]:
    return {
        REASON: reason[:_MAX_REASON],
        ORIGINAL_TOPIC: record.topic,
        ORIGINAL_PARTITION: str(record.partition),
        ORIGINAL_OFFSET: str(record.offset),
    }
