"""The idle timeout of a sandbox, shared by the projector (which indexes deadlines) and the
enforcer (which acts on them), so both always compute the same deadline."""

from __future__ import annotations

from datetime import datetime, timedelta

# Sandbox metadata key that overrides the idle timeout for one sandbox (set by the app per
# project, e.g. longer for paying users). Values outside the bounds fall back to the default.
IDLE_OVERRIDE_KEY = "idleTimeoutSeconds"
MIN_OVERRIDE = timedelta(seconds=10)
MAX_OVERRIDE = timedelta(days=7)


def idle_timeout(metadata: dict[str, str], default_seconds: int) -> timedelta:
    raw = metadata.get(IDLE_OVERRIDE_KEY)
    if raw is not None:
        try:
            chosen: timedelta | None = timedelta(seconds=int(raw))
        except ValueError:
            chosen = None
        if chosen is not None and MIN_OVERRIDE <= chosen <= MAX_OVERRIDE:
            return chosen
    return timedelta(seconds=default_seconds)


def idle_deadline(
    last_active_at: datetime, metadata: dict[str, str], default_seconds: int
) -> datetime:
    return last_active_at + idle_timeout(metadata, default_seconds)
