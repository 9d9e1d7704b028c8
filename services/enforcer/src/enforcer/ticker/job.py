"""One scheduled tick: pause requests for the idle sandboxes, then the repair of the stuck
ones and the deletes policies ask for (not in a dry run), counted in the ticker's metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from enforcer.ticker import metrics
from enforcer.ticker.deletes import DeleteReadModel, request_deletes
from enforcer.ticker.repair import ReadModel as RepairReadModel
from enforcer.ticker.repair import repair_stuck
from enforcer.ticker.tick import PausePublisher, ReadModel, RequestedPauses, TickOptions, run_tick
from sandbox_common.facts import FactSink


class TickReadModel(ReadModel, RepairReadModel, DeleteReadModel, Protocol):
    """The indexes and the documents (sandbox_common.readmodel.reader)."""


class TickPublisher(PausePublisher, FactSink, Protocol):
    """Pause requests in bulk, repairs one by one (sandbox_common.broker.BrokerFacts)."""


@dataclass(frozen=True)
class TickJob:
    model: TickReadModel
    publisher: TickPublisher
    requested: RequestedPauses
    options: TickOptions
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    async def __call__(self) -> None:
        o = self.options
        with metrics.TICK_SECONDS.time():
            report = await run_tick(self.clock(), self.model, self.publisher, o, self.requested)
            if not o.dry_run:
                report.repaired = await repair_stuck(
                    self.clock(),
                    self.model,
                    self.publisher,
                    stuck_after=o.stuck_after,
                    batch_size=o.batch_size,
                )
                deletes = await request_deletes(
                    self.clock(), self.model, self.publisher, self.requested, o.batch_size
                )
                metrics.DELETE_REQUESTS.inc(deletes)
        metrics.TICKS.labels(outcome="ran").inc()
        metrics.LAST_TICK.set_to_current_time()
        metrics.CHECKED.inc(report.checked)
        metrics.TICK_JUDGED.observe(report.checked)
        metrics.TICK_REQUESTS.observe(report.paused)
        metrics.PAUSE_REQUESTS.inc(report.paused)
        metrics.WOULD_PAUSE.inc(report.would_pause)
        metrics.ERRORS.inc(report.errors)
        metrics.REPAIRED.inc(report.repaired)
