"""Use case: one enforcement tick. Pages through the due part of the idle-deadline index, batch
after batch (ENFORCER_BATCH_SIZE each) until none is left, re-judges each sandbox from its
status document, and asks for a pause of the idle ones.

Per batch: the commands go out first, then the PAUSE_REQUESTED facts (the read model shows
PAUSING), each group handed to the producer at once and acknowledged together. A fact whose
command failed is not sent: if a fact is lost the actuator's outcome still lands; the reverse
order could leave a sandbox PAUSING with no command behind it.

Paging is by place in the index (shard, then deadline and id), not by re-reading its head: a
sandbox stays in the index until the projector folds its PAUSE_REQUESTED, so re-reading the head
would find the same batch again. Each due sandbox is read once; the place only moves forward and
the range ends at `now`, so a tick ends (and stops anyway once it judged as many as the index
held at its start).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from enforcer.domain.idle import PauseCommand, decide
from sandbox_common.commands import Command, PauseOrder, new_command
from sandbox_common.envelope import Envelope, FactType, Source
from sandbox_common.facts import Origin, PauseRequested, new_fact
from sandbox_common.payloads import Subject
from sandbox_common.readmodel import StatusDoc
from sandbox_common.readmodel.reader import DueMark, DuePlace

log = logging.getLogger("enforcer")


class ReadModel(Protocol):
    """The idle-deadline index (its size, its due part), and the status documents."""

    async def running_count(self) -> int: ...

    async def due_count(self, now: datetime) -> int: ...

    async def due_page(
        self, now: datetime, limit: int, place: DuePlace | None = None
    ) -> tuple[list[DueMark], DuePlace | None]: ...

    async def by_id(self, sandbox_ids: Sequence[str]) -> dict[str, StatusDoc]: ...


class PausePublisher(Protocol):
    """Many records at once, acknowledged together; per record None or why it failed
    (sandbox_common.broker.BrokerFacts)."""

    async def publish_commands_all(
        self, issued: Sequence[Command]
    ) -> list[BaseException | None]: ...

    async def publish_all(self, facts: Sequence[Envelope]) -> list[BaseException | None]: ...


class RequestedPauses(Protocol):
    """Pause commands already published (by command id, for a while). While the projector lags,
    the next tick still sees the sandbox RUNNING and judges the same idleness again; publishing
    the request again would stamp a PAUSE_REQUESTED after the pause outcome and put a paused
    sandbox back to PAUSING (found by the fault suite, tests/faults)."""

    async def already(self, command_ids: Sequence[str]) -> set[str]: ...

    async def remember_all(self, command_ids: Sequence[str]) -> None: ...


@dataclass
class TickReport:
    running: int = 0  # RUNNING sandboxes the tick considered (the whole idle-deadline index)
    checked: int = 0  # of them, past their idle deadline: judged
    paused: int = 0
    would_pause: int = 0
    errors: int = 0
    repaired: int = 0
    batches: int = 0
    commands: list[PauseCommand] = field(default_factory=list)


def pause_messages(command: PauseCommand, now: datetime) -> tuple[Command, Envelope]:
    subject = Subject(command.sandbox_id, command.project_id)
    order = new_command(
        PauseOrder(idle_seconds=command.idle_seconds, reason=command.reason.value),
        subject,
        command_id=command.command_id,
        issued_at=now,
        judged_last_active_at=command.judged_last_active_at,
    )
    fact = new_fact(
        FactType.PAUSE_REQUESTED,
        PauseRequested(
            command_id=command.command_id,
            reason=command.reason.value,
            idle_seconds=command.idle_seconds,
            idle_since=command.judged_last_active_at,
            deadline=command.deadline,
        ),
        subject,
        Origin(f"{command.command_id}:requested", Source.ENFORCER, now),
    )
    return order, fact


@dataclass(frozen=True)
class TickOptions:
    # Sandboxes judged per batch (ENFORCER_BATCH_SIZE); a tick runs batches until none is due.
    batch_size: int
    # Judge and log, pause nothing (ENFORCER_DRY_RUN).
    dry_run: bool = False
    # PAUSING/STARTING for longer than this is repaired (repair.py).
    stuck_after: timedelta = timedelta(minutes=5)


_BATCHES_IN_FLIGHT = 4


@dataclass(frozen=True)
class _Tick:
    now: datetime
    model: ReadModel
    publisher: PausePublisher
    options: TickOptions
    requested: RequestedPauses | None
    report: TickReport

    async def judge(self, page: list[DueMark]) -> list[PauseCommand]:
        """The batch's pause commands to send (none in a dry run)."""
        ids = [m.sandbox_id for m in page]
        current = await self.model.by_id(ids)
        self.report.checked += len(ids)
        judged = (decide(current[sid], self.now) for sid in ids if sid in current)
        decided = [c for c in judged if c is not None]
        dry_run = self.options.dry_run
        if self.requested is not None and decided and not dry_run:
            repeats = await self.requested.already([c.command_id for c in decided])
            decided = [c for c in decided if c.command_id not in repeats]
        for command in decided:
            self.report.commands.append(command)
            log.info(
                "[Sandbox Idle Enforcer] Pausing idle sandbox for project %s (idle for %ds)",
                command.project_id,
                command.idle_seconds,
                extra={
                    "project_id": command.project_id,
                    "sandbox_id": command.sandbox_id,
                    "idle_seconds": command.idle_seconds,
                    "command_id": command.command_id,
                    "dry_run": dry_run,
                },
            )
        if dry_run:
            self.report.would_pause += len(decided)
            return []
        return decided

    async def send(self, decided: list[PauseCommand]) -> None:
        """Commands, then the facts of those whose command went out, then the markers. One
        sandbox's failure does not stop the others; the next tick asks again for it."""
        messages = [pause_messages(c, self.now) for c in decided]
        failed = await self.publisher.publish_commands_all([order for order, _ in messages])
        sent = _succeeded(decided, messages, failed)
        fact_failed = await self.publisher.publish_all([fact for _, fact in sent.values()])
        done = _succeeded(list(sent), list(sent.values()), fact_failed)
        self.report.paused += len(done)
        self.report.errors += len(decided) - len(done)
        if self.requested is not None and done:
            try:
                await self.requested.remember_all([c.command_id for c in done])
            except Exception:  # the next tick may ask again: the actuator's ledger dedupes
                log.exception("pause requests not remembered (%d)", len(done))


def _succeeded(
    decided: list[PauseCommand],
    messages: list[tuple[Command, Envelope]],
    failures: list[BaseException | None],
) -> dict[PauseCommand, tuple[Command, Envelope]]:
    ok: dict[PauseCommand, tuple[Command, Envelope]] = {}
    for command, message, failure in zip(decided, messages, failures, strict=True):
        if failure is None:
            ok[command] = message
        else:
            log.error(
                "pause request for sandbox %s not published: %r",
                command.sandbox_id,
                failure,
                extra={"sandbox_id": command.sandbox_id},
            )
    return ok


async def run_tick(
    now: datetime,
    model: ReadModel,
    publisher: PausePublisher,
    options: TickOptions,
    requested: RequestedPauses | None = None,
) -> TickReport:
    started = time.perf_counter()
    log.info("[Sandbox Idle Enforcer] Starting idle timeout enforcement")
    report = TickReport()
    # The seed listed every running sandbox and checked each; the index hands over only the
    # due ones, but the line still counts what the seed's dashboards expect: the running ones.
    report.running = await model.running_count()
    due = await model.due_count(now)
    log.info(
        "[Sandbox Idle Enforcer] Found %d running sandboxes to check",
        report.running,
        extra={"running": report.running, "due": due, "dry_run": options.dry_run},
    )
    tick = _Tick(now, model, publisher, options, requested, report)
    # Batches are published while the next ones are read and judged, a few at a time: the
    # broker's acknowledgements are waited for beside the work, not in a row with it, and one
    # batch's facts share a produce request with the next batch's commands.
    sending: deque[asyncio.Task[None]] = deque()
    place: DuePlace | None = DuePlace()
    # The place only moves forward, so this ends; the guard: no more sandboxes than the index
    # held at the start (and a batch that arrived meanwhile).
    while place is not None and report.checked < report.running + options.batch_size:
        page, place = await model.due_page(now, options.batch_size, place)
        if not page:
            continue
        report.batches += 1
        decided = await tick.judge(page)
        if decided:
            sending.append(asyncio.create_task(tick.send(decided)))
        if len(sending) > _BATCHES_IN_FLIGHT:
            await sending.popleft()
    for task in sending:
        await task
    elapsed_ms = (time.perf_counter() - started) * 1000
    log.info(
        "[Sandbox Idle Enforcer] Completed: %d paused, %d errors, %dms",
        report.paused,
        report.errors,
        round(elapsed_ms),
        extra={
            "paused": report.paused,
            "errors": report.errors,
            "would_pause": report.would_pause,
            "checked": report.checked,
            "batches": report.batches,
            "duration_ms": round(elapsed_ms, 1),
        },
    )
    return report
