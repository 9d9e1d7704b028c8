"""Use case: put the whole read model back into Redis, from PostgreSQL, when Redis lost it.

Redis keeps no persistence (it holds only a rebuildable read model), so a restarted Redis comes
back empty: status documents and the idle-deadline and transitional indexes are gone, and new
facts would bring back only the sandboxes they touch. A mark in Redis says "complete"; the guard
checks it every few seconds and, when it is missing, republishes every sandbox from PostgreSQL,
then sets it. Writes are revision-guarded, so a batch projected meanwhile is never regressed,
and a Redis that is wiped again mid-way leaves the mark unset (it is checked against a token).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Protocol

from projector.handlers import Projected, ReadModel

log = logging.getLogger(__name__)


class AllStates(Protocol):
    def all_states(self, chunk: int, killed_since: datetime) -> AsyncIterator[list[Projected]]: ...


class CompletenessMark(Protocol):
    async def complete(self) -> bool: ...

    async def begin_rebuild(self) -> str: ...

    async def finish_rebuild(self, token: str) -> bool: ...


async def rebuild_if_lost(
    states: AllStates,
    read_model: ReadModel,
    mark: CompletenessMark,
    tombstone_ttl: timedelta,
    chunk: int = 500,
) -> int | None:
    """Sandboxes republished, or None when Redis still held everything."""
    if await mark.complete():
        return None
    token = await mark.begin_rebuild()
    count = 0
    async for projected in states.all_states(chunk, datetime.now(UTC) - tombstone_ttl):
        await read_model.publish(projected)
        count += len(projected)
    if not await mark.finish_rebuild(token):
        log.warning("read model rebuild overtaken (Redis emptied again, or another replica)")
    return count


class ReadModelGuard:
    """The background check: start() in the startup hook, stop() at shutdown."""

    def __init__(
        self,
        states: AllStates,
        read_model: ReadModel,
        mark: CompletenessMark,
        tombstone_ttl: timedelta,
        interval: float,
    ) -> None:
        self._states, self._read_model, self._mark = states, read_model, mark
        self._tombstone_ttl, self._interval = tombstone_ttl, interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="read-model-guard")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            started = time.perf_counter()
            try:
                count = await rebuild_if_lost(
                    self._states, self._read_model, self._mark, self._tombstone_ttl
                )
            except Exception as exc:  # stores down: the next check tries again
                log.warning("read model check failed: %s: %s", exc.__class__.__name__, exc)
            else:
                if count is not None:
                    log.warning(
                        "Redis had lost the read model: %d sandboxes republished from"
                        " PostgreSQL in %.0f ms",
                        count,
                        (time.perf_counter() - started) * 1000,
                        extra={"sandboxes": count},
                    )
            await asyncio.sleep(self._interval)
