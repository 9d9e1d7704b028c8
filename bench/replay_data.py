"""A synthetic sandbox-lifecycle history for the replay benchmark and the replay tests: every
sandbox is created, used, paused and resumed a few times, and some are killed at the end."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

from sandbox_common.envelope import Envelope, FactType, Source

_CYCLE = [
    FactType.ACTIVITY,
    FactType.UPDATED,
    FactType.PAUSE_REQUESTED,
    FactType.PAUSED,
    FactType.WAKE_REQUESTED,
    FactType.RESUMED,
]
_SOURCE = {
    FactType.ACTIVITY: Source.UI,
    FactType.PAUSE_REQUESTED: Source.ENFORCER,
    FactType.WAKE_REQUESTED: Source.API,
}


def history(
    events: int, sandboxes: int, run: str, start: datetime | None = None
) -> Iterator[Envelope]:
    """`events` facts over `sandboxes` sandboxes, round by round (one fact per sandbox each)."""
    t0 = start or datetime(2026, 1, 1, tzinfo=UTC)
    rounds = max(1, events // sandboxes)
    made = 0
    for r in range(rounds):
        for i in range(sandboxes):
            if made >= events:
                return
            sid = f"{run}-{i}"
            project = f"{run}-p{i}"
            if r == 0:
                kind = FactType.CREATED
            elif r == rounds - 1 and i % 10 == 0:
                kind = FactType.KILLED
            else:
                kind = _CYCLE[(r - 1) % len(_CYCLE)]
            at = t0 + timedelta(seconds=60 * r, microseconds=i)
            data: dict[str, object] = {}
            if kind in (FactType.CREATED, FactType.RESUMED):
                data = {"metadata": {"projectId": project}, "template_id": "base"}
            elif kind is FactType.UPDATED:
                data = {"set_timeout": (at + timedelta(minutes=10)).isoformat()}
            elif kind is FactType.PAUSED:
                data = {"execution": {"execution_time": 1000 * r}}
            yield Envelope(
                event_id=str(uuid.uuid4()),
                type=kind,
                source=_SOURCE.get(kind, Source.E2B_WEBHOOK),
                sandbox_id=sid,
                project_id=project,
                occurred_at=at,
                received_at=at,
                data=data,
            )
            made += 1
