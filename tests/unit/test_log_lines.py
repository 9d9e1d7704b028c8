"""JSON log lines: INFO lines are written in batches within a moment, WARNING and above at once,
and nothing is left behind at shutdown; ingest writes the seed's lines (CONTRACT.md)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

from ingest.handlers import Outcome
from sandbox_common import e2b
from sandbox_common.kafka_publisher import BrokerUnavailableError
from sandbox_common.logging import BatchingStreamHandler, JsonFormatter
from tests.unit.test_e2b_webhooks import SECRET, V2
from tests.unit.test_ingest_intake import BODY, make


def _logger(stream: io.StringIO) -> tuple[logging.Logger, BatchingStreamHandler]:
    handler = BatchingStreamHandler(stream)
    handler.setFormatter(JsonFormatter("test"))
    logger = logging.getLogger(f"test-batching-{id(stream)}")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger, handler


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


async def test_info_lines_wait_a_moment_then_go_out_together_in_order() -> None:
    stream = io.StringIO()
    log, _ = _logger(stream)
    log.info("one", extra={"sandbox_id": "sbx-1"})
    log.info("two")
    assert stream.getvalue() == ""
    await asyncio.sleep(BatchingStreamHandler.FLUSH_SECONDS * 2)
    lines = _lines(stream)
    assert [line["message"] for line in lines] == ["one", "two"]
    assert lines[0]["sandbox_id"] == "sbx-1"


async def test_a_warning_writes_itself_and_the_lines_before_it_at_once() -> None:
    stream = io.StringIO()
    log, _ = _logger(stream)
    log.info("before")
    log.warning("now")
    assert [line["message"] for line in _lines(stream)] == ["before", "now"]


async def test_flush_at_shutdown_writes_what_is_waiting() -> None:
    stream = io.StringIO()
    log, handler = _logger(stream)
    log.info("last words")
    handler.flush()
    assert [line["message"] for line in _lines(stream)] == ["last words"]


def test_without_an_event_loop_each_line_is_written_at_once() -> None:
    stream = io.StringIO()
    log, _ = _logger(stream)
    log.info("from a thread")
    assert [line["message"] for line in _lines(stream)] == ["from a thread"]


@pytest.fixture
def ingest_log() -> Iterator[io.StringIO]:
    """ingest's logger through the production handler and formatter, into a string."""
    stream = io.StringIO()
    handler = BatchingStreamHandler(stream)
    handler.setFormatter(JsonFormatter("ingest"))
    logger = logging.getLogger("ingest")
    saved = logger.handlers[:], logger.propagate, logger.level
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        handler.flush()
        logger.handlers[:], logger.propagate, logger.level = saved


def _ingest_lines(stream: io.StringIO) -> list[dict[str, object]]:
    for handler in logging.getLogger("ingest").handlers:
        handler.flush()
    return _lines(stream)


RECEIVED = "[E2B Webhook] Received event: sandbox.lifecycle.updated for sandbox isb7xq1"
PROCESSED = re.compile(r"\[E2B Webhook\] Processed sandbox\.lifecycle\.updated event in \d+ms")


def _processed(lines: list[dict[str, object]]) -> list[dict[str, object]]:
    return [line for line in lines if "Processed" in str(line["message"])]


async def test_an_accepted_event_logs_received_and_processed_once(ingest_log: io.StringIO) -> None:
    intake, _, _ = make()
    result = await intake.accept(BODY, e2b.compute_signature(SECRET, BODY))
    assert result.outcome is Outcome.ACCEPTED
    received, processed = _ingest_lines(ingest_log)
    assert received["message"] == RECEIVED
    assert received["outcome"] == "accepted"
    assert PROCESSED.fullmatch(str(processed["message"])), processed["message"]
    assert processed["level"] == "info"
    assert processed["event_type"] == V2["type"]
    assert processed["sandbox_id"] == V2["sandbox_id"]
    assert processed["event_id"] == V2["id"]
    assert isinstance(processed["duration_ms"], float | int)
    assert processed["duration_ms"] == received["duration_ms"]


async def test_no_processed_line_for_a_duplicate_a_refusal_or_a_503(
    ingest_log: io.StringIO,
) -> None:
    intake, publisher, _ = make()
    sig = e2b.compute_signature(SECRET, BODY)
    await intake.accept(BODY, sig)
    _ingest_lines(ingest_log)
    ingest_log.truncate(0)
    ingest_log.seek(0)
    assert (await intake.accept(BODY, sig)).outcome is Outcome.DUPLICATE
    assert (await intake.accept(BODY, "nope")).outcome is Outcome.REJECTED_SIGNATURE
    bad = b'{"id": "x"}'
    await intake.accept(bad, e2b.compute_signature(SECRET, bad))
    publisher.down = True
    other = BODY.replace(str(V2["id"]).encode(), b"another-event-id")
    with pytest.raises(BrokerUnavailableError):
        await intake.accept(other, e2b.compute_signature(SECRET, other))
    lines = _ingest_lines(ingest_log)
    assert [line["outcome"] for line in lines if "outcome" in line] == ["duplicate"]
    assert _processed(lines) == []


async def test_a_record_left_in_flight_by_a_503_is_logged_processed_once_when_it_lands(
    ingest_log: io.StringIO,
) -> None:
    intake, publisher, _ = make()
    sig = e2b.compute_signature(SECRET, BODY)
    publisher.stall = True
    with pytest.raises(BrokerUnavailableError):
        await intake.accept(BODY, sig)
    assert _processed(_ingest_lines(ingest_log)) == []
    publisher.stall = False
    publisher.stalled[0].set_result(None)  # the broker is back: the record lands
    await asyncio.sleep(0)
    assert (await intake.accept(BODY, sig)).outcome in (Outcome.ACCEPTED, Outcome.DUPLICATE)
    (processed,) = _processed(_ingest_lines(ingest_log))
    assert processed["event_id"] == V2["id"]
