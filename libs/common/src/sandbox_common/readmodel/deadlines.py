"""The deadlines a status document shows: when a RUNNING sandbox has been idle long enough to be
paused, and when E2B ends its run regardless (its maximum instance length).

One rule, applied where a status document is written (the projector, a rebuild, a replay) and
where a deadline is shown from PostgreSQL (status-api's fleet route), so the indexes the enforcer
and the warner scan and every deadline a user sees always agree. Pure: no I/O, no clock.
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
class DeadlineRule:
    """`default_seconds` is the IDLE_TIMEOUT_SECONDS setting, `max_lifetime_seconds` is
    E2B_MAX_LIFETIME_SECONDS: the plan's maximum instance length (E2B: 24 h on Pro, 1 h on
    Hobby). E2B counts it from the start of the run, and a resume starts a new run."""

    default_seconds: int
    max_lifetime_seconds: int = 86_400

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

    def hard_end(self, run_started_at: datetime) -> datetime:
        """When E2B ends the run whatever the activity (pausing it or killing it, as the sandbox
        was created): no refresh or connect reaches past it (400 'max instance length
        exceeded', e2b-dev/infra orchestrator keep_alive.go)."""
        return run_started_at + timedelta(seconds=self.max_lifetime_seconds)
