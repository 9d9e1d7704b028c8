"""A job on a schedule, on one replica at a time: the ticker's ticks and the reconciler's
passes. Runs one after another in one task (never overlapping), only while this replica holds
the lease, at the next scheduled time after *now* (missed runs coalesce into one)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Protocol

from enforcer.schedule import Schedule


class Lease(Protocol):
    async def hold(self) -> bool: ...

    async def release(self) -> None: ...


class Periodic:
    def __init__(
        self,
        name: str,
        schedule: Schedule,
        lease: Lease,
        job: Callable[[], Awaitable[None]],
        log: logging.Logger,
        *,
        enabled: bool = True,
        not_leader: Callable[[], None] = lambda: None,
        failed: Callable[[], None] = lambda: None,
    ) -> None:
        self._name = name
        self._schedule = schedule
        self._lease = lease
        self._job = job
        self._log = log
        self._enabled = enabled
        self._not_leader = not_leader
        self._failed = failed
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):  # best effort: the lease expires anyway
            await self._lease.release()

    async def run_once(self) -> None:
        """One scheduled moment: the job, if this replica holds (or takes) the lease."""
        if not self._enabled:
            return
        try:
            if not await self._lease.hold():
                self._not_leader()
                return
            await self._job()
        except Exception:  # a failed run is logged and counted; the next one tries again
            self._failed()
            self._log.exception("%s failed", self._name)

    async def _run(self) -> None:
        while True:
            now = datetime.now(UTC)
            await asyncio.sleep((self._schedule.next_after(now) - now).total_seconds())
            await self.run_once()
