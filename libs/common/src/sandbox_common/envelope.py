"""The event envelope on `sandbox-lifecycle`: one fact about one sandbox, versioned.

Every producer (ingest, enforcer, reconciler, status-api) writes this shape and every consumer
reads it, so the E2B payload shapes stay at the edge (see e2b.py).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import msgspec

from sandbox_common.e2b import EARLIEST, LATEST, LifecycleType, WebhookEvent, contains_nul
from sandbox_common.payloads import Wire

SCHEMA_VERSION = 1


class _OpenEnum(StrEnum):
    """A value this version does not know (a newer producer's, or a new E2B event type) is
    kept as it is, not refused: such a fact is recorded and folded like any other (it moves
    only the "seen" times), never dead-lettered for its name alone."""

    @classmethod
    def _missing_(cls, value: object) -> _OpenEnum | None:
        if not isinstance(value, str):
            return None
        member = str.__new__(cls, value)
        member._name_ = "UNKNOWN"
        member._value_ = value
        return member

    @property
    def known(self) -> bool:
        return self._value_ in type(self)._value2member_map_


class Source(_OpenEnum):
    """Who observed or caused a fact; answers "why did this happen?" in the history."""

    E2B_WEBHOOK = "e2b-webhook"
    ENFORCER = "enforcer"
    RECONCILER = "reconciler"
    UI = "ui"
    API = "api"
    # Servers that are not browsers: an agent working in the sandbox, the app's backend.
    AGENT = "agent"
    BACKEND = "backend"
    PROJECTOR = "projector"
    ADMIN = "admin"


class FactType(_OpenEnum):
    CREATED = LifecycleType.CREATED.value
    PAUSED = LifecycleType.PAUSED.value
    RESUMED = LifecycleType.RESUMED.value
    UPDATED = LifecycleType.UPDATED.value
    KILLED = LifecycleType.KILLED.value
    # E2B's; recorded, but it changes no state.
    CHECKPOINTED = LifecycleType.CHECKPOINTED.value
    # Ours (source enforcer): the enforcer judged the sandbox idle and asked for a pause; the
    # read model shows PAUSING until E2B's answer (a paused or killed fact) or a cancellation.
    PAUSE_REQUESTED = "sandbox.pause.requested"
    # The actuator dropped the pause: activity came after it was judged. Back to RUNNING.
    PAUSE_CANCELLED = "sandbox.pause.cancelled"
    # A user or the app used the sandbox (a heartbeat, source ui/api): moves its last activity,
    # and so its idle deadline; never its status.
    ACTIVITY = "sandbox.activity.recorded"
    # A user asked to wake a paused sandbox: STARTING until E2B resumes it (a resumed fact) or
    # the actuator gives up (wake failed: back to PAUSED).
    WAKE_REQUESTED = "sandbox.wake.requested"
    # Ours (source enforcer): a policy deletes the sandbox (paused deleteAfterPausedSeconds);
    # recorded for the history, no state change until E2B's answer (a killed fact).
    DELETE_REQUESTED = "sandbox.delete.requested"
    WAKE_FAILED = "sandbox.wake.failed"
    # Derived by the projector (source projector): an idle pause of ours was undone by a resume
    # within the flap window. Recorded for the history and the metric; it changes no state
    # itself (the flap is already in the state, from the paused and resumed facts).
    FLAPPING = "sandbox.flapping.detected"
    # An admin set a project's lifecycle policy, or the global default (facts.PolicySet). About
    # no sandbox: its subject is facts.policy_subject(), and the projector keeps it apart.
    POLICY_SET = "project.policy.set"


# Facts that move a sandbox's last activity (and with it the idle deadline).
MOVES_LAST_ACTIVITY = frozenset({FactType.CREATED, FactType.RESUMED, FactType.ACTIVITY})


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    """Built by sandbox_common.facts (ours) or `from_webhook` (E2B's); `data` holds the fact
    type's payload (facts.py), read through typed views, never by raw key."""

    event_id: str
    type: FactType
    source: Source
    sandbox_id: str
    occurred_at: datetime
    received_at: datetime
    project_id: str | None = None
    team_id: str | None = None
    data: dict[str, Any] = msgspec.field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION


class EnvelopeError(ValueError):
    """A record on the topic that is not a readable envelope (a poison record)."""


_wire = Wire(Envelope, EnvelopeError, "not a sandbox-lifecycle envelope")
encode = _wire.encode


def decode(payload: bytes) -> Envelope:
    envelope = _wire.decode(payload)
    if envelope.schema_version > SCHEMA_VERSION:
        raise EnvelopeError(
            f"schema_version {envelope.schema_version} is newer than this reader ({SCHEMA_VERSION})"
        )
    if envelope.occurred_at.tzinfo is None:
        raise EnvelopeError("occurred_at must carry a UTC offset")
    # What PostgreSQL or date arithmetic cannot take would stop the projector's partition for
    # good (its store errors are retried, never skipped): such a record is poison instead.
    if not EARLIEST <= envelope.occurred_at < LATEST:
        raise EnvelopeError(f"occurred_at {envelope.occurred_at.isoformat()} is out of range")
    if b"\\u0000" in payload and contains_nul(msgspec.structs.asdict(envelope)):
        raise EnvelopeError("a string holds U+0000, which cannot be stored")
    return envelope


def from_webhook(
    event: WebhookEvent, *, received_at: datetime, project_metadata_key: str
) -> Envelope:
    data: dict[str, Any] = dict(event.data)
    if event.metadata:
        data["metadata"] = event.metadata
    for key in ("template_id", "build_id", "execution_id"):
        value = getattr(event, key)
        if value is not None:
            data[key] = value
    data["payload_version"] = event.version
    return Envelope(
        event_id=event.id,
        type=FactType(event.type),
        source=Source.E2B_WEBHOOK,
        sandbox_id=event.sandbox_id,
        project_id=event.metadata.get(project_metadata_key) or None,  # "" names no project
        team_id=event.team_id,
        occurred_at=event.timestamp,
        received_at=received_at,
        data=data,
    )


def kafka_headers(envelope: Envelope) -> list[tuple[str, bytes]]:
    """Headers that let tools filter a topic without decoding bodies."""
    return [
        ("event-id", envelope.event_id.encode()),
        ("event-type", envelope.type.encode()),
        ("source", envelope.source.encode()),
        ("schema-version", str(envelope.schema_version).encode()),
    ]
