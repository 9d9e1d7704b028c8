"""A sandbox as E2B's API describes it (shared/reference/e2b.md): an item of
`GET /v2/sandboxes`, or `GET /sandboxes/{id}`, which also says how E2B itself will end and wake
it (`lifecycle`). Pure."""

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
    # GET /sandboxes/{id} only (`lifecycle: {onTimeout, autoResume}`): E2B pauses it at its
    # timeout ("pause") instead of killing it ("kill"), and wakes it on traffic (auto-resume).
    on_timeout: str | None = None
    auto_resume: bool | None = None

    @classmethod
    def from_api(cls, item: Mapping[str, Any]) -> ListedSandbox:
        metadata = item.get("metadata") or {}
        lifecycle = item.get("lifecycle")
        lifecycle = lifecycle if isinstance(lifecycle, Mapping) else {}
        on_timeout = lifecycle.get("onTimeout")
        auto_resume = lifecycle.get("autoResume")
        return cls(
            sandbox_id=str(item["sandboxID"]),
            state=str(item.get("state", "running")),
            started_at=parse_time(item.get("startedAt")),
            end_at=parse_time(item.get("endAt")),
            metadata={str(k): str(v) for k, v in metadata.items()},
            template_id=item.get("templateID"),
            on_timeout=on_timeout if isinstance(on_timeout, str) else None,
            auto_resume=auto_resume if isinstance(auto_resume, bool) else None,
        )
