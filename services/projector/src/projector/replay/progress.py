"""Progress of a long rebuild on stderr: records done, records/s and the time left."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(
        self,
        total: int,
        stream: TextIO | None = None,
        every: float = 0.5,
        label: str = "replay",
    ) -> None:
        self.total = total
        self._label = label
        self._stream = stream or sys.stderr
        self._every = every
        self._started = self._last = time.monotonic()
        self._tty = self._stream.isatty()
        self._mid_line = False

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def update(self, done: int, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < (self._every if self._tty else 1.0):
            return
        self._last = now
        rate = done / max(now - self._started, 1e-9)
        left = max(self.total - done, 0) / rate if rate > 0 else float("inf")
        pct = done / self.total * 100 if self.total else 100.0
        width = 30
        bar = "#" * int(width * pct / 100)
        line = (
            f"{self._label} [{bar:<{width}}] {done:,}/{self.total:,} events ({pct:.0f}%)"
            f" {rate:,.0f} events/s, ETA {left:,.0f} s"
        )
        self._stream.write(("\r" + line) if self._tty else line + "\n")
        self._mid_line = self._tty
        self._stream.flush()

    def phase(self, text: str) -> None:
        prefix = "\n" if self._mid_line else ""
        self._mid_line = False
        self._stream.write(f"{prefix}{self._label}: {text} ({self.elapsed:.1f} s)\n")
        self._stream.flush()
