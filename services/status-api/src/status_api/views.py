"""Response shapes of status-api (stable camelCase JSON, documented in OpenAPI)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from sandbox_common.readmodel import POLL_AFTER_MS, Status, StatusDoc


class SandboxStatus(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    project_id: str | None
    sandbox_id: str
    status: Status
    last_active_at: datetime | None
    # How long a polling client should wait before asking again; null: stop polling.
    poll_after_ms: int | None
    status_changed_at: datetime | None = None
    timeout_at: datetime | None = None
    template_id: str | None = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)


def sandbox_status(doc: StatusDoc) -> SandboxStatus:
    return SandboxStatus(
        project_id=doc.project_id,
        sandbox_id=doc.sandbox_id,
        status=doc.status,
        last_active_at=doc.last_active_at,
        poll_after_ms=POLL_AFTER_MS[doc.status],
        status_changed_at=doc.status_changed_at,
        timeout_at=doc.timeout_at,
        template_id=doc.template_id,
        metadata=doc.metadata,
    )


class Caller(msgspec.Struct, frozen=True, kw_only=True):
    """Optional body of activity and wake: who is calling, recorded with the fact (it answers
    "why won't it pause?" in the history)."""

    source: Literal["ui", "api"] = "ui"


class ActivityAnswer(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    sandbox_id: str
    recorded: bool


class WakeAnswer(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    sandbox_id: str
    status: Status
    poll_after_ms: int | None
