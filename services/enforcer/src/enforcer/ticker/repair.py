"""Use case: sandboxes left in PAUSING or STARTING too long (a lost command, an actuator that was
down) are put back to what we last knew for sure, so nothing stays in between for ever.

PAUSING -> cancelled (RUNNING): the next tick judges it again and, if still idle, asks again.
STARTING -> wake failed (PAUSED): the user can wake it again. The reconciler (issue 5) corrects
either against E2B's own view when E2B did act and its webhook was lost.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from sandbox_common.envelope import Envelope, FactType, Source
from sandbox_common.facts import FactSink, Origin, Undone, new_fact
from sandbox_common.payloads import Subject
from sandbox_common.readmodel import Status, StatusDoc

log = logging.getLogger("enforcer")

_REPAIR = {Status.PAUSING: FactType.PAUSE_CANCELLED, Status.STARTING: FactType.WAKE_FAILED}


class ReadModel(Protocol):
    """The transitional index, and the status documents."""

    async def entered_before(self, cutoff: datetime, limit: int) -> list[str]: ...

    async def by_id(self, sandbox_ids: Sequence[str]) -> dict[str, StatusDoc]: ...


def repair_fact(doc: StatusDoc, now: datetime, cutoff: datetime) -> Envelope | None:
    fact_type = _REPAIR.get(doc.status)
    since = doc.status_changed_at
    if fact_type is None or since is None or since > cutoff:
        return None
    return new_fact(
        fact_type,
        Undone(reason="stuck", stuck_since=since, status=doc.status.value),
        Subject(doc.sandbox_id, doc.project_id),
        # One repair per stay in the state: a second tick (or replica) repeats the same fact.
        Origin(f"repair:{doc.sandbox_id}:{since.isoformat()}", Source.ENFORCER, now),
    )


async def repair_stuck(
    now: datetime,
    model: ReadModel,
    publisher: FactSink,
    *,
    stuck_after: timedelta,
    batch_size: int,
) -> int:
    cutoff = now - stuck_after
    ids = await model.entered_before(cutoff, batch_size)
    current = await model.by_id(ids)
    repaired = 0
    for sandbox_id in ids:
        doc = current.get(sandbox_id)
        fact = repair_fact(doc, now, cutoff) if doc is not None else None
        if doc is None or fact is None:
            continue
        await publisher.publish(fact)
        repaired += 1
        log.warning(
            "[Sandbox Idle Enforcer] Sandbox %s stuck in %s since %s: %s",
            sandbox_id,
            doc.status,
            doc.status_changed_at.isoformat() if doc.status_changed_at else "?",
            fact.type,
            extra={"sandbox_id": sandbox_id, "project_id": fact.project_id},
        )
    return repaired
