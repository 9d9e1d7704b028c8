"""One item of E2B's `GET /v2/sandboxes` (shared/reference/e2b.md), as we read it. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sandbox_common.e2b import parse_time


@dataclass(frozen=True)
class ListedSandbox:
    sandbox_id: str
    state: str  # "running" or "paused"
    started_at: datetime | None
    end_at: datetime | None
    metadata: dict[str, str] = field(default_factory=dict)
    template_id: str | None = None

    @classmethod
    def from_api(cls, item: Mapping[str, Any]) -> ListedSandbox:
        metadata = item.get("metadata") or {}
        return cls(
            sandbox_id=str(item["sandboxID"]),
            state=str(item.get("state", "running")),
            started_at=parse_time(item.get("startedAt")),
            end_at=parse_time(item.get("endAt")),
            metadata={str(k): str(v) for k, v in metadata.items()},
            template_id=item.get("templateID"),
        )
