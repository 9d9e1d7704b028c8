"""What facts and commands share: the sandbox they are about (`Subject`), and the typed payload
written into their `data` (its fields are the keys, in their order; a field left None is
omitted; times are `datetime.isoformat()` strings)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

import msgspec


class Subject(NamedTuple):
    """The sandbox a fact or command is about, with what we know of its owners."""

    sandbox_id: str
    project_id: str | None = None
    team_id: str | None = None


class Payload(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    def to_data(self) -> dict[str, Any]:
        raw: dict[str, Any] = msgspec.to_builtins(self, builtin_types=(datetime,))
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in raw.items()}
