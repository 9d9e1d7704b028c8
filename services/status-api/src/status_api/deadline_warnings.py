"""Warnings on the change feed shortly before a sandbox's deadlines, once per deadline:
`pauseImminent` before a RUNNING one's pause (activity moves an idle deadline, and a new
deadline is warned about afresh), `lifetimeEnding` before E2B ends its run regardless (its
maximum instance length), `deleteImminent` before a policy deletes a PAUSED one.

Every status-api replica runs a loop per kind; a marker in Redis (set in the same step as the
feed entry) makes one of them send each warning.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

import msgspec

from sandbox_common.notifications import Notice, NoticeKind
from sandbox_common.readmodel import PauseReason, Status, StatusDoc
from sandbox_common.readmodel.feed import ChangeKind, Warning
from status_api import metrics
from status_api.views import DeleteWarning, LifetimeWarning, PauseWarning, WarnWindows
from status_api.warn_policy import WarnPolicy

log = logging.getLogger(__name__)

# Deadlines this far in the past are still warned about: the loop may have been late, and the
# enforcer pauses at its next tick, not at the deadline itself.
_LOOKBACK_SECONDS = 10.0


# Sandboxes handled per Redis round trip: sandboxes created together reach their deadlines
# together (a thousand a second in the benchmarks), and two round trips each was a fifth of
# status-api's CPU while they did.
_CHUNK = 500

AnyWarning = PauseWarning | LifetimeWarning | DeleteWarning


class Reader(Protocol):
    async def deadlines_between(self, low: float, high: float) -> list[tuple[str, float]]: ...

    async def hard_ends_between(self, low: float, high: float) -> list[tuple[str, float]]: ...

    async def deletes_between(self, low: float, high: float) -> list[tuple[str, float]]: ...

    async def by_sandboxes(self, sandbox_ids: Sequence[str]) -> list[StatusDoc | None]: ...


class Notices(Protocol):
    """The projects' notification outbox (sandbox_common.notification_outbox)."""

    async def enqueue(self, notices: Sequence[Notice]) -> None: ...


# The warnings projects may be notified of (lifetimeEnding is not one).
_NOTIFIED = {
    ChangeKind.WARNING: NoticeKind.PAUSE_IMMINENT,
    ChangeKind.DELETE: NoticeKind.DELETE_IMMINENT,
}


class Feed(Protocol):
    async def warn_once(self, warnings: Sequence[Warning], marker_ttl_seconds: int) -> list[bool]:
        """One answer per warning: False when its deadline was already warned about."""
        ...


@dataclass(frozen=True, slots=True)
class Watch:
    """One kind of deadline: where the document has it, which index lists it, how far ahead
    it is warned about and what the warning looks like."""

    kind: ChangeKind
    event: str  # the SSE event name
    window: timedelta

    def deadline(self, doc: StatusDoc) -> datetime | None:
        if self.kind is ChangeKind.LIFETIME:
            return doc.max_lifetime_at
        if self.kind is ChangeKind.DELETE:
            return doc.delete_at
        return doc.idle_deadline_at

    async def scan(self, reader: Reader, low: float, high: float) -> list[tuple[str, float]]:
        if self.kind is ChangeKind.LIFETIME:
            return await reader.hard_ends_between(low, high)
        if self.kind is ChangeKind.DELETE:
            return await reader.deletes_between(low, high)
        return await reader.deadlines_between(low, high)

    def warning(self, doc: StatusDoc, now: datetime) -> AnyWarning | None:
        """The warning due for this document now, or None (not in the status the deadline is
        for, outside the window)."""
        deadline = self.deadline(doc)
        status = Status.PAUSED if self.kind is ChangeKind.DELETE else Status.RUNNING
        if not self.window:  # a policy's `warnBeforeSeconds: 0`: no warning
            return None
        if doc.status is not status or deadline is None or deadline - now > self.window:
            return None
        left = max(0, round((deadline - now).total_seconds()))
        if self.kind is ChangeKind.DELETE:
            return DeleteWarning(
                sandbox_id=doc.sandbox_id,
                project_id=doc.project_id,
                delete_at=deadline,
                seconds_left=left,
            )
        if self.kind is ChangeKind.LIFETIME:
            return LifetimeWarning(
                sandbox_id=doc.sandbox_id,
                project_id=doc.project_id,
                max_lifetime_at=deadline,
                seconds_left=left,
            )
        return PauseWarning(
            sandbox_id=doc.sandbox_id,
            project_id=doc.project_id,
            idle_deadline_at=deadline,
            seconds_left=left,
            reason=doc.pause_reason or PauseReason.IDLE,
        )

    def within(self, windows: WarnWindows) -> Watch:
        """This kind of deadline, warned about as far ahead as `windows` say."""
        if self.kind is ChangeKind.LIFETIME:
            window = windows.lifetime
        elif self.kind is ChangeKind.DELETE:
            window = windows.delete
        else:
            window = windows.pause
        return self if window == self.window else replace(self, window=window)

    def key(self, deadline: datetime) -> str:
        """Names the deadline in the once-only marker; unique across kinds."""
        stamp = f"{deadline.timestamp():.3f}"
        return stamp if self.kind is ChangeKind.WARNING else f"{self.kind.value}:{stamp}"


def watches(windows: WarnWindows) -> tuple[Watch, ...]:
    return (
        Watch(ChangeKind.WARNING, "pauseImminent", windows.pause),
        Watch(ChangeKind.LIFETIME, "lifetimeEnding", windows.lifetime),
        Watch(ChangeKind.DELETE, "deleteImminent", windows.delete),
    )


def warning_for(doc: StatusDoc, now: datetime, warn_before: timedelta) -> PauseWarning | None:
    """The pauseImminent warning due for this document now (None outside the window)."""
    warning = Watch(ChangeKind.WARNING, "pauseImminent", warn_before).warning(doc, now)
    assert warning is None or isinstance(warning, PauseWarning)
    return warning


@dataclass(frozen=True, eq=False)
class DeadlineWarner:
    reader: Reader
    feed: Feed
    watch: Watch
    clock: Callable[[], datetime]
    interval_seconds: float = 1.0
    # Each project's lead times (policies' warnBeforeSeconds); None: the watch's own window.
    warn: WarnPolicy | None = None
    # Where the warnings' notifications go (None: nowhere).
    notices: Notices | None = None
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
                log.warning("%s warnings skipped this round: %s", self.watch.event, exc)
            await asyncio.sleep(self.interval_seconds)

    async def run_once(self) -> int:
        now = self.clock()
        widest = self.watch if self.warn is None else self.watch.within(self.warn.widest())
        horizon = now + widest.window
        due = await self.watch.scan(
            self.reader, now.timestamp() - _LOOKBACK_SECONDS, horizon.timestamp()
        )
        fresh = [entry for entry in due if entry not in self._handled]
        sent = 0
        for start in range(0, len(fresh), _CHUNK):
            chunk = fresh[start : start + _CHUNK]
            docs = await self.reader.by_sandboxes([sandbox_id for sandbox_id, _ in chunk])
            warnings: list[Warning] = []
            settled: list[tuple[str, float]] = []
            for entry, doc in zip(chunk, docs, strict=True):
                watch = self._watch_for(doc)
                warning = self._warning(watch, doc, now) if doc is not None else None
                if warning is not None:
                    warnings.append(warning)
                if doc is None or not _ahead_of(watch, doc, now):
                    settled.append(entry)
            if not await self._notify(warnings, now):
                settled = []  # asked about again next round: their notices are still owed
            if warnings:
                ttl = int(widest.window.total_seconds() + _LOOKBACK_SECONDS) + 3600
                answers = await self.feed.warn_once(warnings, ttl)
                sent += sum(answers)
                metrics.WARNINGS.labels(event=self.watch.event).inc(sum(answers))
            # Only once the warnings are on the feed: a failed round asks again.
            for entry in settled:
                self._remember(entry)
        return sent

    def _watch_for(self, doc: StatusDoc | None) -> Watch:
        if self.warn is None or doc is None:
            return self.watch
        return self.watch.within(self.warn.windows(doc.project_id))

    def _warning(self, watch: Watch, doc: StatusDoc, now: datetime) -> Warning | None:
        warning = watch.warning(doc, now)
        deadline = watch.deadline(doc)
        if warning is None or deadline is None:
            return None
        return Warning(
            sandbox_id=doc.sandbox_id,
            project_id=doc.project_id,
            revision=doc.revision,
            deadline_key=watch.key(deadline),
            payload=self._encoder.encode(warning),
            kind=watch.kind,
        )

    async def _notify(self, warnings: Sequence[Warning], now: datetime) -> bool:
        """The warnings' notices into the outbox; False when PostgreSQL did not take them (the
        feed still gets the warnings: frontends do not wait for PostgreSQL). Every replica
        may enqueue the same delivery once: at least once, one delivery id."""
        if not warnings or self.notices is None or self.watch.kind not in _NOTIFIED:
            return True
        try:
            await self.notices.enqueue([self._notice(w, now) for w in warnings])
        except Exception as exc:
            log.warning("%s notifications not enqueued, next round: %s", self.watch.event, exc)
            return False
        return True

    def _notice(self, warning: Warning, now: datetime) -> Notice:
        kind = _NOTIFIED[self.watch.kind]
        return Notice(
            delivery_id=f"{kind.value}:{warning.sandbox_id}:{warning.deadline_key}",
            event=kind,
            project_id=warning.project_id or "",
            sandbox_id=warning.sandbox_id,
            occurred_at=now,
            data=msgspec.json.decode(warning.payload),
        )

    def _remember(self, key: tuple[str, float]) -> None:
        """Not asked about again while it stays due: warned, or not to be warned."""
        self._handled[key] = None
        if len(self._handled) > 100_000:
            self._handled.popitem(last=False)


def _ahead_of(watch: Watch, doc: StatusDoc, now: datetime) -> bool:
    """Its deadline is further away than its own window (a project with a shorter lead time
    than the widest one scanned): warned about in a later round, so not remembered yet."""
    deadline = watch.deadline(doc)
    return bool(watch.window) and deadline is not None and deadline - now > watch.window
