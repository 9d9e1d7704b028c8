"""Use case: a batch that could not be written as it was folded ahead (see pipeline.py) is
projected on its own, with backoff; if it keeps failing while both stores answer, one of its
records is poison to the stores: it is isolated record by record and dead-lettered, so the
partition moves on. If the stores do not answer, or Redis refuses writes (OOM at maxmemory,
READONLY after a failover, LOADING), the error propagates and the batch's partitions are sought
back to it: retried, never skipped, never dead-lettered."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from projector import metrics
from projector.handlers import BatchOutcome, Poison, Projection, project_batch
from sandbox_common.dead_letters import Record
from sandbox_common.store_outage import is_outage

log = logging.getLogger("projector")
_ATTEMPTS = 6
# A batch that keeps failing while the stores are healthy is retried record by record.
_SINGLE_ATTEMPTS = 2


@dataclass(frozen=True, eq=False)
class RetryingProjection:
    to: Projection
    problems: Callable[[], Awaitable[list[str]]]
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep

    async def project(self, records: Sequence[Record]) -> None:
        started = time.perf_counter()
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                outcome = await self._once(records)
                break
            except Exception as exc:
                if attempt == _ATTEMPTS:
                    # A Redis refusing writes (OOM, READONLY, LOADING) may still answer PING:
                    # the error itself says the store is out, not the record.
                    if not is_outage(exc) and not await self.problems():
                        outcome = await self._one_by_one(records)
                        break
                    # Raising rewinds the partitions: the batch is retried, never skipped.
                    log.exception("projection failed %d times; rewinding the batch", attempt)
                    raise
                delay = min(10.0, 0.1 * 2**attempt) * random.uniform(0.5, 1.0)  # noqa: S311
                metrics.RETRIES.inc()
                log.warning(
                    "projection failed (attempt %d), retrying in %.2fs",
                    attempt,
                    delay,
                    exc_info=True,
                )
                await self.sleep(delay)
        metrics.observe_batch(outcome, records, time.perf_counter() - started)

    async def _once(self, records: Sequence[Record]) -> BatchOutcome:
        return await project_batch(records, self.to)

    async def _one_by_one(self, records: Sequence[Record]) -> BatchOutcome:
        total = BatchOutcome()
        for record in records:
            for attempt in range(1, _SINGLE_ATTEMPTS + 1):
                try:
                    one = await self._once([record])
                except Exception as exc:
                    if is_outage(exc):
                        raise  # the store went out meanwhile: rewind, never dead-letter
                    if attempt < _SINGLE_ATTEMPTS:
                        await self.sleep(0.2)
                        continue
                    reason = f"processing failed after {attempt} attempts: {exc!r}"
                    await self.to.outbox.send(record, reason)
                    total.poison.append(Poison(record, reason))
                else:
                    total.facts.extend(one.facts)
                    total.changed.extend(one.changed)
                    total.poison.extend(one.poison)
                break
        return total
