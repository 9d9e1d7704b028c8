"""The typed payload of a fact or a command, written into its `data`: its fields are the keys,
in their order; a field left None is omitted; times are `datetime.isoformat()` strings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec


class Payload(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    def to_data(self) -> dict[str, Any]:
        raw: dict[str, Any] = msgspec.to_builtins(self, builtin_types=(datetime,))
        return {k: v.isoformat() if isinstance(v, datetime) else v for k, v in raw.items()}
