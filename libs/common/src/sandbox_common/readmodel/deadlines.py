"""The deadlines a status document shows: when a RUNNING sandbox has been idle long enough to be
paused (backed off while its pauses keep being undone at once: flapping), and when E2B ends its
run regardless (its maximum instance length).

One rule, applied where a status document is written (the projector, a rebuild, a replay) and
where a deadline is shown from PostgreSQL (status-api's fleet route), so the indexes the enforcer
and the warner scan and every deadline a user sees always agree. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import NamedTuple

from sandbox_common.policies.book import Governs
from sandbox_common.policies.quiet_hours import next_opening

# Sandbox metadata key that overrides the idle timeout for one sandbox (set by the app per
# project, e.g. longer for paying users). Values outside the bounds fall back to the default.
IDLE_OVERRIDE_KEY = "idleTimeoutSeconds"
MIN_OVERRIDE = timedelta(seconds=10)
MAX_OVERRIDE = timedelta(days=7)

# Flapping: an idle pause undone by a resume within the flap window (health probes waking an
# auto-resume sandbox, over and over). From this many such pauses among the recent ones on, the
# sandbox's idle timeout doubles per flap, up to MAX_BACKOFF times.
FLAPS_BEFORE_BACKOFF = 2
MAX_BACKOFF = 8
# Flaps older than this before the sandbox's latest idle pause are forgotten: a sandbox that
# stopped flapping gets its own idle timeout back.
FLAP_MEMORY = timedelta(hours=24)


class PauseReason(StrEnum):
    """Why the enforcer pauses a RUNNING sandbox at its deadline: idleness (activity moves the
    deadline), or a policy's forced pause (activity does not)."""

    IDLE = "idle"
    MAX_RUNNING_TIME = "maxRunningTime"
    QUIET_HOURS = "quietHours"


class Forced(NamedTuple):
    at: datetime
    reason: PauseReason


@dataclass(frozen=True, slots=True)
class DeadlineRule:
    """`default_seconds` is the IDLE_TIMEOUT_SECONDS setting, `max_lifetime_seconds` is
    E2B_MAX_LIFETIME_SECONDS: the plan's maximum instance length (E2B: 24 h on Pro, 1 h on
    Hobby). E2B counts it from the start of the run, and a resume starts a new run."""

    default_seconds: int
    max_lifetime_seconds: int = 86_400
    # IDLE_FLAP_WINDOW_SECONDS: a resume this soon after our idle pause undid it.
    flap_window_seconds: int = 120

    def timeout(self, metadata: Mapping[str, str], policy_seconds: int | None = None) -> timedelta:
        """The sandbox's own metadata first, then its policies' (project, then default), then
        IDLE_TIMEOUT_SECONDS (policies/effective.py gives the same order field by field)."""
        raw = metadata.get(IDLE_OVERRIDE_KEY)
        if raw is not None:
            try:
                chosen: timedelta | None = timedelta(seconds=int(raw))
            except ValueError:
                chosen = None
            if chosen is not None and MIN_OVERRIDE <= chosen <= MAX_OVERRIDE:
                return chosen
        return timedelta(seconds=policy_seconds or self.default_seconds)

    def deadline(
        self,
        last_active_at: datetime,
        metadata: Mapping[str, str],
        backoff: int = 1,
        policy_seconds: int | None = None,
    ) -> datetime:
        return last_active_at + self.timeout(metadata, policy_seconds) * backoff

    def flaps(
        self, idle_pauses: Sequence[datetime], resumes: Sequence[datetime]
    ) -> list[tuple[datetime, datetime]]:
        """(idle pause, the first resume after it) for each pause a resume undid within the
        flap window. Both sequences sorted, oldest first."""
        if not idle_pauses:
            return []
        window = timedelta(seconds=self.flap_window_seconds)
        since = idle_pauses[-1] - FLAP_MEMORY
        found = []
        for paused in idle_pauses:
            if paused < since:
                continue
            resumed = next((r for r in resumes if r > paused), None)
            if resumed is not None and resumed - paused <= window:
                found.append((paused, resumed))
        return found

    @staticmethod
    def backoff(flaps: int) -> int:
        """The idle timeout's factor: 1, then 2, 4, 8 from FLAPS_BEFORE_BACKOFF flaps on."""
        if flaps < FLAPS_BEFORE_BACKOFF:
            return 1
        return int(min(MAX_BACKOFF, 2 ** (flaps - FLAPS_BEFORE_BACKOFF + 1)))

    @staticmethod
    def forced_pause(run_started_at: datetime, governs: Governs) -> Forced | None:
        """The pause a policy makes whatever the activity, for a run that began at
        `run_started_at`: after its maximum running time, or when the first quiet-hours window
        after the run's start opens (a run begun inside a window is left to the idle rule until
        the next one). The earlier of the two."""
        found: list[Forced] = []
        if governs.max_running_seconds is not None:
            at = run_started_at + timedelta(seconds=governs.max_running_seconds)
            found.append(Forced(at, PauseReason.MAX_RUNNING_TIME))
        if governs.quiet_hours is not None:
            opens = next_opening(governs.quiet_hours, run_started_at)
            found.append(Forced(opens, PauseReason.QUIET_HOURS))
        return min(found, key=lambda f: f.at) if found else None

    def hard_end(self, run_started_at: datetime) -> datetime:
        """When E2B ends the run whatever the activity (pausing it or killing it, as the sandbox
        was created): no refresh or connect reaches past it (400 'max instance length
        exceeded', e2b-dev/infra orchestrator keep_alive.go)."""
        return run_started_at + timedelta(seconds=self.max_lifetime_seconds)
