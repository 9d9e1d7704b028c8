"""Use case: the deletes a tick asks for. A PAUSED sandbox whose project policy deletes it
(deleteAfterPausedSeconds after its pause; status-api warned its frontends before) gets a kill
command, then a DELETE_REQUESTED fact for its history, in that order (as pause requests: a lost
fact still leaves the actuator's outcome to land). Deletes are rare, so one batch per tick."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from enforcer.domain.deletes import REASON, DeleteCommand, decide_delete
from enforcer.ticker.tick import PausePublisher, RequestedPauses
from sandbox_common.commands import Command, KillOrder, new_command
from sandbox_common.envelope import Envelope, FactType, Source
from sandbox_common.facts import DeleteRequested, Origin, new_fact
from sandbox_common.payloads import Subject
from sandbox_common.readmodel import StatusDoc

log = logging.getLogger("enforcer")


class DeleteReadModel(Protocol):
    async def due_deletes(self, now: datetime, limit: int) -> list[str]: ...

    async def by_id(self, sandbox_ids: Sequence[str]) -> dict[str, StatusDoc]: ...


def delete_messages(command: DeleteCommand, now: datetime) -> tuple[Command, Envelope]:
    subject = Subject(command.sandbox_id, command.project_id)
    order = new_command(
        KillOrder(reason=REASON, paused_since=command.paused_since),
        subject,
        command_id=command.command_id,
        issued_at=now,
    )
    fact = new_fact(
        FactType.DELETE_REQUESTED,
        DeleteRequested(
            command_id=command.command_id,
            reason=REASON,
            paused_since=command.paused_since,
            deadline=command.deadline,
        ),
        subject,
        Origin(f"{command.command_id}:requested", Source.ENFORCER, now),
    )
    return order, fact


async def request_deletes(
    now: datetime,
    model: DeleteReadModel,
    publisher: PausePublisher,
    requested: RequestedPauses,
    limit: int,
) -> int:
    """Returns the deletes asked for (each once: `requested` remembers them, as pauses)."""
    ids = await model.due_deletes(now, limit)
    if not ids:
        return 0
    docs = await model.by_id(ids)
    decided = [c for sid in ids if sid in docs if (c := decide_delete(docs[sid], now))]
    repeats = await requested.already([c.command_id for c in decided]) if decided else set()
    decided = [c for c in decided if c.command_id not in repeats]
    if not decided:
        return 0
    messages = [delete_messages(c, now) for c in decided]
    failed = await publisher.publish_commands_all([order for order, _ in messages])
    sent = [(c, fact) for c, (_, fact), f in zip(decided, messages, failed, strict=True) if not f]
    await publisher.publish_all([fact for _, fact in sent])
    await requested.remember_all([c.command_id for c, _ in sent])
    for command, _ in sent:
        log.info(
            "[Sandbox Idle Enforcer] Deleting sandbox %s of project %s (paused since %s)",
            command.sandbox_id,
            command.project_id,
            command.paused_since.isoformat(),
            extra={
                "sandbox_id": command.sandbox_id,
                "project_id": command.project_id,
                "command_id": command.command_id,
                "reason": REASON,
            },
        )
    return len(sent)
