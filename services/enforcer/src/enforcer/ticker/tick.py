"""Use case: one enforcement tick. Reads the due part of the idle-deadline index, re-judges
each sandbox from its status document, and asks for a pause of the idle ones.

Per pause: the command goes out first, then the PAUSE_REQUESTED fact (the read model shows
PAUSING). If the fact is lost the actuator's outcome still lands; the reverse order could
leave a sandbox PAUSING with no command behind it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from enforcer.domain.idle import PauseCommand, decide
from sandbox_common.commands import Command, PauseOrder, new_command
from sandbox_common.envelope import Envelope, FactType, Source
from sandbox_common.facts import Origin, PauseRequested, Publisher, new_fact
from sandbox_common.payloads import Subject
from sandbox_common.readmodel import StatusDoc

log = logging.getLogger("enforcer")


class ReadModel(Protocol):
    """The idle-deadline index (its size, its due part), and the status documents."""

    async def running_count(self) -> int: ...

    async def due(self, now: datetime, limit: int) -> list[str]: ...

    async def by_id(self, sandbox_ids: Sequence[str]) -> dict[str, StatusDoc]: ...


class RequestedPauses(Protocol):
    """Pause commands already published (by command id, for a while). While the projector lags,
    the next tick still sees the sandbox RUNNING and judges the same idleness again; publishing
    the request again would stamp a PAUSE_REQUESTED after the pause outcome and put a paused
    sandbox back to PAUSING (found by the fault suite, tests/faults)."""

    async def already(self, command_ids: Sequence[str]) -> set[str]: ...

    async def remember(self, command_id: str) -> None: ...


@dataclass
class TickReport:
    running: int = 0  # RUNNING sandboxes the tick considered (the whole idle-deadline index)
    checked: int = 0  # of them, past their idle deadline: judged
    paused: int = 0
    would_pause: int = 0
    errors: int = 0
    repaired: int = 0
    commands: list[PauseCommand] = field(default_factory=list)


# Pause requests in flight at once: a tick with many due sandboxes must not take one broker round
# trip per sandbox in a row (1,000 due would take seconds), nor flood the producer.
_CONCURRENT_SENDS = 64


async def _send_all(
    commands: list[PauseCommand],
    now: datetime,
    publisher: Publisher,
    report: TickReport,
    requested: RequestedPauses | None,
) -> None:
    gate = asyncio.Semaphore(_CONCURRENT_SENDS)

    async def send(command: PauseCommand) -> None:
        async with gate:
            try:
                order, fact = pause_messages(command, now)
                await publisher.publish_command(order)
                await publisher.publish(fact)
                report.paused += 1
                if requested is not None:
                    await requested.remember(command.command_id)
            except Exception:  # one sandbox's failure must not stop the tick; next tick retries
                report.errors += 1
                log.exception(
                    "pause request for sandbox %s not published",
                    command.sandbox_id,
                    extra={"sandbox_id": command.sandbox_id},
                )

    await asyncio.gather(*(send(c) for c in commands))


def pause_messages(command: PauseCommand, now: datetime) -> tuple[Command, Envelope]:
    subject = Subject(command.sandbox_id, command.project_id)
    order = new_command(
        PauseOrder(idle_seconds=command.idle_seconds, reason="idle"),
        subject,
        command_id=command.command_id,
        issued_at=now,
        judged_last_active_at=command.judged_last_active_at,
    )
    fact = new_fact(
        FactType.PAUSE_REQUESTED,
        PauseRequested(
            command_id=command.command_id,
            reason="idle",
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
    # Most sandboxes judged in one tick (ENFORCER_BATCH_SIZE).
    batch_size: int
    # Judge and log, pause nothing (ENFORCER_DRY_RUN).
    dry_run: bool = False
    # PAUSING/STARTING for longer than this is repaired (repair.py).
    stuck_after: timedelta = timedelta(minutes=5)


async def run_tick(
    now: datetime,
    model: ReadModel,
    publisher: Publisher,
    options: TickOptions,
    requested: RequestedPauses | None = None,
) -> TickReport:
    batch_size, dry_run = options.batch_size, options.dry_run
    started = time.perf_counter()
    log.info("[Sandbox Idle Enforcer] Starting idle timeout enforcement")
    report = TickReport()
    # The seed listed every running sandbox and checked each; the index hands over only the
    # due ones, but the line still counts what the seed's dashboards expect: the running ones.
    report.running = await model.running_count()
    due_ids = await model.due(now, batch_size)
    current = await model.by_id(due_ids)
    report.checked = len(due_ids)
    log.info(
        "[Sandbox Idle Enforcer] Found %d running sandboxes to check",
        report.running,
        extra={"running": report.running, "due": report.checked, "dry_run": dry_run},
    )
    judged = (decide(current[sid], now) for sid in due_ids if sid in current)
    decided = [c for c in judged if c is not None]
    if requested is not None and decided and not dry_run:
        repeats = await requested.already([c.command_id for c in decided])
        decided = [c for c in decided if c.command_id not in repeats]
    to_send: list[PauseCommand] = []
    for command in decided:
        sandbox_id = command.sandbox_id
        report.commands.append(command)
        log.info(
            "[Sandbox Idle Enforcer] Pausing idle sandbox for project %s (idle for %ds)",
            command.project_id,
            command.idle_seconds,
            extra={
                "project_id": command.project_id,
                "sandbox_id": sandbox_id,
                "idle_seconds": command.idle_seconds,
                "command_id": command.command_id,
                "dry_run": dry_run,
            },
        )
        to_send.append(command)
    if dry_run:
        report.would_pause = len(to_send)
    else:
        await _send_all(to_send, now, publisher, report, requested)
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
            "duration_ms": round(elapsed_ms, 1),
        },
    )
    return report
