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
    """The body of 201 from create, and of 200/201 from connect and resume (`Sandbox`)."""
    return {
        "sandboxID": sb.sandbox_id,
        "templateID": sb.template_id,
        # The simulator has no templates: the template is named by what the caller sent.
        "alias": sb.template_id,
        "clientID": CLIENT_ID,
        "envdVersion": ENVD_VERSION,
    }


def listed(sb: Sandbox) -> dict[str, Any]:
    """Each item of GET /v2/sandboxes (`ListedSandbox`)."""
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


def detail(sb: Sandbox) -> dict[str, Any]:
    """GET /sandboxes/{id} (`SandboxDetail`): the listed fields and how E2B itself ends and
    wakes the sandbox."""
    return {
        **listed(sb),
        "lifecycle": {
            "onTimeout": "pause" if sb.auto_pause else "kill",
            "autoResume": sb.auto_resume,
        },
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
