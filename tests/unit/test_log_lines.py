"""JSON log lines: INFO lines are written in batches within a moment, WARNING and above at once,
and nothing is left behind at shutdown."""

from __future__ import annotations

import asyncio
import io
import json
import logging

from sandbox_common.logging import BatchingStreamHandler, JsonFormatter


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
