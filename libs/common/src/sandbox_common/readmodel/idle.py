"""The idle-deadline rule: when a RUNNING sandbox has been idle long enough to be paused.

One rule, applied where a status document is written (the projector, a rebuild, a replay) and
where a deadline is shown from PostgreSQL (status-api's fleet route), so the index the enforcer
scans and every deadline a user sees always agree. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

# Sandbox metadata key that overrides the idle timeout for one sandbox (set by the app per
# project, e.g. longer for paying users). Values outside the bounds fall back to the default.
IDLE_OVERRIDE_KEY = "idleTimeoutSeconds"
MIN_OVERRIDE = timedelta(seconds=10)
MAX_OVERRIDE = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class IdleRule:
    """`default_seconds` is the IDLE_TIMEOUT_SECONDS setting."""

    default_seconds: int

    def timeout(self, metadata: Mapping[str, str]) -> timedelta:
        raw = metadata.get(IDLE_OVERRIDE_KEY)
        if raw is not None:
            try:
                chosen: timedelta | None = timedelta(seconds=int(raw))
            except ValueError:
                chosen = None
            if chosen is not None and MIN_OVERRIDE <= chosen <= MAX_OVERRIDE:
                return chosen
        return timedelta(seconds=self.default_seconds)

    def deadline(self, last_active_at: datetime, metadata: Mapping[str, str]) -> datetime:
        return last_active_at + self.timeout(metadata)
