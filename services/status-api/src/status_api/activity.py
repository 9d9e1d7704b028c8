"""Use case: a heartbeat from a frontend or the app becomes an activity fact, at most once per
sandbox per throttle window, so the idle deadline moves while a user works."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from sandbox_common.envelope import Envelope, FactType, Source
from sandbox_common.readmodel import StatusDoc


class Throttle(Protocol):
    async def first_in_window(self, sandbox_id: str) -> bool: ...

    async def forget(self, sandbox_id: str) -> None: ...


class Publisher(Protocol):
    async def publish(self, envelope: Envelope) -> None: ...


@dataclass(frozen=True)
class Recorded:
    recorded: bool  # False: a heartbeat of this window was already recorded


async def record_activity(
    doc: StatusDoc, source: Source, throttle: Throttle, publisher: Publisher
) -> Recorded:
    if not await throttle.first_in_window(doc.sandbox_id):
        return Recorded(recorded=False)
    now = datetime.now(UTC)
    fact = Envelope(
        event_id=str(uuid.uuid4()),
        type=FactType.ACTIVITY,
        source=source,
        sandbox_id=doc.sandbox_id,
        project_id=doc.project_id,
        team_id=doc.team_id,
        occurred_at=now,
        received_at=now,
    )
    try:
        await publisher.publish(fact)
    except BaseException:
        # Not recorded: the next heartbeat must not be throttled away.
        await throttle.forget(doc.sandbox_id)
        raise
    return Recorded(recorded=True)
