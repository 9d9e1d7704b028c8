"""JSON logs, one object per line: the seed's message text plus structured fields.

Use `log.info("[E2B Webhook] Received event: %s for sandbox %s", t, sid, extra=fields(...))`:
the message keeps the seed's wording (dashboards grep it), the fields make it queryable.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import UTC, datetime
from typing import Any

import msgspec

_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


_encoder = msgspec.json.Encoder(enc_hook=str)


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self._service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "service": self._service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(
            (k, v) for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")
        )
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _encoder.encode(entry).decode()


class BatchingStreamHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A StreamHandler that writes INFO lines in batches, at most `FLUSH_SECONDS` late.

    The stdlib's writes and flushes each line: one system call per webhook at ingest, a visible
    share of its CPU at thousands a second. Lines at WARNING and above are written at once (with
    those before them), and so is everything on shutdown (logging flushes its handlers at exit);
    a process killed outright loses at most the last `FLUSH_SECONDS` of INFO lines.
    """

    FLUSH_SECONDS = 0.05
    MAX_LINES = 256

    def __init__(self, stream: Any = None) -> None:
        super().__init__(stream)
        self._lines: list[str] = []
        self._timer_loop: asyncio.AbstractEventLoop | None = None

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._lines.append(self.format(record))
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)
            return
        if record.levelno >= logging.WARNING or len(self._lines) >= self.MAX_LINES:
            self._write()
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop in this thread: nothing would write them later
            self._write()
            return
        if self._timer_loop is not loop:
            self._timer_loop = loop
            loop.call_later(self.FLUSH_SECONDS, self._write_later)

    def flush(self) -> None:
        self.acquire()
        try:
            self._write()
        finally:
            self.release()

    def _write_later(self) -> None:
        self.acquire()
        try:
            self._timer_loop = None
            self._write()
        finally:
            self.release()

    def _write(self) -> None:
        if self._lines:
            lines, self._lines = self._lines, []
            self.stream.write("\n".join(lines) + "\n")
        if self.stream and hasattr(self.stream, "flush"):
            self.stream.flush()


def _skip_unused_record_fields() -> None:
    # The stdlib's documented optimisations (logging HOWTO, "Optimization"): our lines never show
    # the caller's file/line, thread or process, and collecting them costs a frame walk and
    # several calls per record, on every webhook.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def configure(service: str, level: str = "INFO") -> None:
    """Route every logger (ours, uvicorn's, aiokafka's) through one JSON handler on stdout."""
    _skip_unused_record_fields()
    handler = BatchingStreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "faststream", "aiokafka"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # Per-request access lines would cost more than the requests themselves at our rates.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    # httpx logs every request at INFO: the actuator's and reconciler's E2B calls have their
    # own outcome lines, and a reconciliation pass makes thousands of calls.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def dict_config(service: str, level: str = "INFO") -> dict[str, Any]:
    """The same JSON output as `configure`, as a dictConfig for servers that take one (uvicorn)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter, "service": service}},
        "handlers": {
            "stdout": {
                "class": "sandbox_common.logging.BatchingStreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            },
        },
        "root": {"handlers": ["stdout"], "level": level.upper()},
    }
