"""pauseImminent: a warning on the change feed shortly before a RUNNING sandbox's idle deadline,
once per deadline. Activity moves the deadline, and a new deadline is warned about afresh.

Every status-api replica runs the loop; a marker in Redis (set in the same step as the feed
entry) makes one of them send each warning.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

import msgspec

from sandbox_common.readmodel import Status, StatusDoc
from sandbox_common.readmodel.feed import Warning
from status_api import metrics
from status_api.views import PauseWarning

log = logging.getLogger(__name__)

# Deadlines this far in the past are still warned about: the loop may have been late, and the
# enforcer pauses at its next tick, not at the deadline itself.
_LOOKBACK_SECONDS = 10.0


# Sandboxes handled per Redis round trip: sandboxes created together reach their deadlines
# together (a thousand a second in the benchmarks), and two round trips each was a fifth of
# status-api's CPU while they did.
_CHUNK = 500


class Reader(Protocol):
    async def deadlines_between(self, low: float, high: float) -> list[tuple[str, float]]: ...

    async def by_sandboxes(self, sandbox_ids: Sequence[str]) -> list[StatusDoc | None]: ...


class Feed(Protocol):
    async def warn_once(self, warnings: Sequence[Warning], marker_ttl_seconds: int) -> list[bool]:
        """One answer per warning: False when its deadline was already warned about."""
        ...


def warning_for(doc: StatusDoc, now: datetime, warn_before: timedelta) -> PauseWarning | None:
    deadline = doc.idle_deadline_at
    if doc.status is not Status.RUNNING or deadline is None or deadline - now > warn_before:
        return None
    return PauseWarning(
        sandbox_id=doc.sandbox_id,
        project_id=doc.project_id,
        idle_deadline_at=deadline,
        seconds_left=max(0, round((deadline - now).total_seconds())),
    )


@dataclass(frozen=True, eq=False)
class PauseWarner:
    reader: Reader
    feed: Feed
    warn_before: timedelta
    clock: Callable[[], datetime]
    interval_seconds: float = 1.0
    # (sandbox, deadline) pairs handled here already: spares a Redis round trip per second for
    # each of them while they stay in the window.
    _handled: OrderedDict[tuple[str, float], None] = field(
        default_factory=OrderedDict, init=False, repr=False
    )
    _encoder: msgspec.json.Encoder = field(
        default_factory=msgspec.json.Encoder, init=False, repr=False
    )

    async def run(self) -> None:
        while True:
            try:
                await self.run_once()
            except Exception as exc:  # Redis down or rebuilt (ReadModelMissingError): next round
                log.warning("pause warnings skipped this round: %s", exc)
            await asyncio.sleep(self.interval_seconds)

    async def run_once(self) -> int:
        now = self.clock()
        horizon = now + self.warn_before
        due = await self.reader.deadlines_between(
            now.timestamp() - _LOOKBACK_SECONDS, horizon.timestamp()
        )
        fresh = [entry for entry in due if entry not in self._handled]
        sent = 0
        for start in range(0, len(fresh), _CHUNK):
            chunk = fresh[start : start + _CHUNK]
            docs = await self.reader.by_sandboxes([sandbox_id for sandbox_id, _ in chunk])
            warnings = [w for doc in docs if doc is not None if (w := self._warning(doc, now))]
            if warnings:
                ttl = int(self.warn_before.total_seconds() + _LOOKBACK_SECONDS) + 3600
                answers = await self.feed.warn_once(warnings, ttl)
                sent += sum(answers)
                metrics.WARNINGS.inc(sum(answers))
            for entry in chunk:
                self._remember(entry)
        return sent

    def _warning(self, doc: StatusDoc, now: datetime) -> Warning | None:
        warning = warning_for(doc, now, self.warn_before)
        if warning is None:
            return None
        return Warning(
            sandbox_id=doc.sandbox_id,
            project_id=doc.project_id,
            revision=doc.revision,
            deadline_key=f"{warning.idle_deadline_at.timestamp():.3f}",
            payload=self._encoder.encode(warning),
        )

    def _remember(self, key: tuple[str, float]) -> None:
        self._handled[key] = None
        if len(self._handled) > 100_000:
            self._handled.popitem(last=False)
