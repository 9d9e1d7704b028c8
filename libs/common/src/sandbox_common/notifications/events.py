"""What a project hears about, and the body it is sent.

Lifecycle facts become notices here (`notice_of`); the two warnings (`pauseImminent`,
`deleteImminent`) are not facts on the topic but status-api's, and become notices where they
are decided. A body names its delivery: a receiver that sees a delivery id twice (we deliver at
least once) has already handled it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec

from sandbox_common.envelope import Envelope, FactType
from sandbox_common.readmodel import PauseReason


class NoticeKind(enum.StrEnum):
    PAUSE_IMMINENT = "pauseImminent"
    PAUSED = "paused"
    RESUMED = "resumed"
    KILLED = "killed"
    DELETE_IMMINENT = "deleteImminent"
    # A project policy acted: a forced pause (maximum running time, quiet hours) or a delete.
    POLICY_ACTION = "policyAction"


class Notice(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """One notification's body (camelCase JSON)."""

    delivery_id: str
    event: NoticeKind
    project_id: str
    sandbox_id: str
    occurred_at: datetime
    data: dict[str, Any] = msgspec.field(default_factory=dict)

    def body(self) -> bytes:
        return _encoder.encode(self)


_encoder = msgspec.json.Encoder()
_FORCED = frozenset({PauseReason.MAX_RUNNING_TIME.value, PauseReason.QUIET_HOURS.value})
_PLAIN = {
    FactType.PAUSED: NoticeKind.PAUSED,
    FactType.RESUMED: NoticeKind.RESUMED,
    FactType.KILLED: NoticeKind.KILLED,
}


def notice_of(fact: Envelope) -> Notice | None:
    """The notice a fact makes for its project (None: nothing a project is told, or a fact
    of no project)."""
    if not fact.project_id:
        return None
    data: Mapping[str, Any] = fact.data or {}
    kind = _PLAIN.get(fact.type)
    said: dict[str, Any] = {}
    if kind is NoticeKind.KILLED and isinstance(reason := data.get("kill_reason"), str):
        said["killReason"] = reason
    if fact.type is FactType.PAUSE_REQUESTED and data.get("reason") in _FORCED:
        kind = NoticeKind.POLICY_ACTION
        said = {"action": "pause", "rule": data["reason"]}
    elif fact.type is FactType.DELETE_REQUESTED:
        kind = NoticeKind.POLICY_ACTION
        said = {"action": "delete", "rule": "deleteAfterPaused"}
    if kind is None:
        return None
    if kind is NoticeKind.POLICY_ACTION and isinstance(deadline := data.get("deadline"), str):
        said["deadline"] = deadline
    return Notice(
        delivery_id=fact.event_id,
        event=kind,
        project_id=fact.project_id,
        sandbox_id=fact.sandbox_id,
        occurred_at=fact.occurred_at,
        data=said,
    )
