"""The JSON columns of PostgreSQL's `sandboxes` table that more than one service reads: written
by the projector, read back by it, by a replay and by status-api's fleet query. One place for
their shape."""

from __future__ import annotations

from datetime import datetime

import msgspec


class LifecycleColumn(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    """`lifecycle`: E2B's own lifecycle of the sandbox as read from E2B, and until when an
    agent or backend said it is busy (a heartbeat's busyUntil); NULL while neither is known."""

    on_timeout: str | None = None
    auto_resume: bool | None = None
    busy_until: datetime | None = None


class CyclesColumn(msgspec.Struct, frozen=True, rename="camel", omit_defaults=True):
    """`recent_cycles`: the newest idle pauses (ours) and resumes, oldest first."""

    idle_pauses: tuple[datetime, ...] = ()
    resumes: tuple[datetime, ...] = ()


_encoder = msgspec.json.Encoder()
_lifecycle = msgspec.json.Decoder(LifecycleColumn)
_cycles = msgspec.json.Decoder(CyclesColumn)
_NO_CYCLES = _encoder.encode(CyclesColumn()).decode()


def encode_lifecycle(
    on_timeout: str | None, auto_resume: bool | None, busy_until: datetime | None = None
) -> str | None:
    if on_timeout is None and auto_resume is None and busy_until is None:
        return None
    return _encoder.encode(LifecycleColumn(on_timeout, auto_resume, busy_until)).decode()


def decode_lifecycle(raw: str | bytes | None) -> LifecycleColumn:
    return _lifecycle.decode(raw) if raw else LifecycleColumn()


def encode_cycles(idle_pauses: tuple[datetime, ...], resumes: tuple[datetime, ...]) -> str:
    if not idle_pauses and not resumes:
        return _NO_CYCLES
    return _encoder.encode(CyclesColumn(idle_pauses, resumes)).decode()


def decode_cycles(raw: str | bytes | None) -> CyclesColumn:
    return _cycles.decode(raw) if raw else CyclesColumn()
