"""E2B's JSON shapes of sandboxes and events (reference/e2b.md; field names as E2B spells them)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from e2b_sim import domain
from e2b_sim.domain import Sandbox
from e2b_sim.store import RecordedEvent
from sandbox_common import e2b

TEAM_ID = "sim-team"
# Fixed values of fields our services never read; present so clients parse E2B's shape.
CLIENT_ID = "6532622b"
ENVD_VERSION = "0.2.0"
DISK_SIZE_MB = 512


def created(sb: Sandbox) -> dict[str, Any]:
    """The body of 201 from POST /sandboxes."""
    return {
        "sandboxID": sb.sandbox_id,
        "templateID": sb.template_id,
        "clientID": CLIENT_ID,
        "envdVersion": ENVD_VERSION,
    }


def detail(sb: Sandbox) -> dict[str, Any]:
    """GET /sandboxes/{id} and each item of GET /v2/sandboxes."""
    return {
        **created(sb),
        "startedAt": _time(sb.started_at),
        "endAt": _time(sb.end_at),
        "state": domain.visible_state(sb),
        "metadata": dict(sb.metadata),
        "cpuCount": sb.cpu_count,
        "memoryMB": sb.memory_mb,
        "diskSizeMB": DISK_SIZE_MB,
    }


def event_body(event: RecordedEvent, version: str) -> dict[str, Any]:
    """A webhook body (v2 or v1); the events API answers the v1 (camelCase) shape."""
    sb = event.emitted.sandbox
    return e2b.build_webhook(
        e2b.WebhookEvent(
            id=event.id,
            type=event.emitted.type,
            sandbox_id=sb.sandbox_id,
            timestamp=event.timestamp,
            metadata=dict(sb.metadata),
            data=dict(event.emitted.data),
            team_id=TEAM_ID,
            template_id=sb.template_id,
            execution_id=sb.execution_id,
            version=version,
        )
    )


def _time(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")
