"""What facts and commands share: the sandbox they are about (`Subject`), and the typed payload
written into their `data` (its fields are the keys, in their order; a field left None is
omitted; times are `datetime.isoformat()` strings)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, NamedTuple, TypeVar

import msgspec

W = TypeVar("W")


class Subject(NamedTuple):
    """The sandbox a fact or command is about, with what we know of its owners."""

    sandbox_id: str
    project_id: str | None = None
    team_id: str | None = None


class Wire(Generic[W]):
    """A wire type's JSON codec: bytes that are not one raise `error` with the reason."""

    def __init__(self, wire_type: type[W], error: type[ValueError], unreadable: str) -> None:
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder(wire_type)
        self._error = error
        self._unreadable = unreadable

    def encode(self, value: W) -> bytes:
        return self._encoder.encode(value)

    def decode(self, payload: bytes) -> W:
        try:
            return self._decoder.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
            raise self._error(f"{self._unreadable}: {exc}") from exc


class Payload(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    def to_data(self) -> dict[str, Any]:
        raw: dict[str, Any] = msgspec.to_builtins(self, builtin_types=(datetime,))
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in raw.items()}
