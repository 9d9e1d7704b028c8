"""A job on a schedule, on one replica at a time: the ticker's ticks and the reconciler's
passes. Runs one after another in one task (never overlapping), only while this replica holds
the lease, at the next scheduled time after *now* (missed runs coalesce into one).

Stopping lets a run in flight finish rather than cancelling it in the middle of its I/O: on
Python 3.11, a cancellation that lands while redis-py's `asyncio.wait_for` around a socket write
completes can be swallowed, and the task then waits for ever (reproduced: a ticker that never
stopped on SIGTERM). Only a run that outlasts the grace period is cancelled."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from enforcer.schedule import Schedule
from sandbox_common.tasks import cancel_and_wait


class Lease(Protocol):
    async def hold(self) -> bool: ...

    async def release(self) -> None: ...


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class Job:
    """What runs, named in its log lines ("<name> failed"), with hooks for its metrics."""

    name: str
    run: Callable[[], Awaitable[None]]
    log: logging.Logger
    not_leader: Callable[[], None] = _nothing
    failed: Callable[[], None] = _nothing


class Periodic:
    def __init__(self, job: Job, schedule: Schedule, lease: Lease, *, enabled: bool = True) -> None:
        self._job = job
        self._schedule = schedule
        self._lease = lease
        self._enabled = enabled
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self._job.name)

    async def stop(self, grace_seconds: float = 5.0) -> None:
        """No run starts any more; one in flight gets `grace_seconds` to finish."""
        self._stopping.set()
        if self._task is not None:
            done, _ = await asyncio.wait([self._task], timeout=grace_seconds)
            if not done:
                await cancel_and_wait(self._task, grace_seconds)
        with contextlib.suppress(Exception):  # best effort: the lease expires anyway
            await self._lease.release()

    async def run_once(self) -> None:
        """One scheduled moment: the job, if this replica holds (or takes) the lease."""
        if not self._enabled:
            return
        job = self._job
        try:
            if not await self._lease.hold():
                job.not_leader()
                return
            await job.run()
        except Exception:  # a failed run is logged and counted; the next one tries again
            job.failed()
            job.log.exception("%s failed", job.name)

    async def _run(self) -> None:
        while not self._stopping.is_set():
            now = datetime.now(UTC)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout((self._schedule.next_after(now) - now).total_seconds()):
                    await self._stopping.wait()
            if not self._stopping.is_set():
                await self.run_once()
