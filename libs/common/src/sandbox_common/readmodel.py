"""The status document the projector writes to Redis and status-api serves (camelCase JSON)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

import msgspec


class Status(StrEnum):
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    PAUSING = "PAUSING"
    PAUSED = "PAUSED"
    # A tombstone: never served (404), kept so a late event cannot bring the sandbox back.
    KILLED = "KILLED"


# How often a client should poll in each state (the seed's adaptive intervals); None: don't.
POLL_AFTER_MS: dict[Status, int | None] = {
    Status.STARTING: 5000,
    Status.PAUSING: 5000,
    Status.RUNNING: 30000,
    Status.PAUSED: None,
    Status.KILLED: None,
}


class StatusDoc(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    sandbox_id: str
    project_id: str | None
    status: Status
    last_active_at: datetime | None
    status_changed_at: datetime | None
    timeout_at: datetime | None = None
    team_id: str | None = None
    template_id: str | None = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    # When a RUNNING sandbox will be idle long enough to pause (None in any other status).
    idle_deadline_at: datetime | None = None
    # Monotonic per sandbox: a write with a lower revision never replaces a higher one.
    revision: int = 0
    updated_at: datetime | None = None


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(StatusDoc)


def encode_doc(doc: StatusDoc) -> bytes:
    return _encoder.encode(doc)


def decode_doc(payload: bytes | str) -> StatusDoc:
    return _decoder.decode(payload)
