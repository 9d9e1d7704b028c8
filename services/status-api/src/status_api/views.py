"""Response shapes of status-api (stable camelCase JSON, documented in OpenAPI)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar, Literal, NamedTuple, TypeVar

import msgspec

from sandbox_common.readmodel import POLL_AFTER_MS, PauseReason, Status, StatusDoc


class SandboxStatus(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    project_id: str | None
    sandbox_id: str
    status: Status
    last_active_at: datetime | None
    # How long a polling client should wait before asking again; null: stop polling.
    poll_after_ms: int | None
    status_changed_at: datetime | None = None
    timeout_at: datetime | None = None
    template_id: str | None = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    # When a RUNNING sandbox becomes idle long enough to be paused (null in other states);
    # activity moves it. The enforcer pauses at its first tick after this time.
    idle_deadline_at: datetime | None = None
    # True from STATUS_API_WARN_BEFORE_SECONDS before the deadline: "pausing soon, stay?".
    pause_imminent: bool = False
    # When E2B ends the run whatever the activity (the plan's maximum instance length, counted
    # from the last create or resume): E2B then pauses the sandbox (created with auto-pause) or
    # kills it. Null unless RUNNING. Activity and keep-alive cannot move it.
    max_lifetime_at: datetime | None = None
    # True from STATUS_API_LIFETIME_WARN_BEFORE_SECONDS before maxLifetimeAt: "save your work".
    lifetime_end_imminent: bool = False
    # E2B's own lifecycle, as read from E2B (null until the reconciler has read it): E2B pauses
    # the sandbox at its own timeout instead of killing it; any traffic to it wakes it.
    auto_pause: bool | None = None
    auto_resume: bool | None = None
    # Until when an agent or backend said it is busy (RUNNING only): idleDeadlineAt is not
    # before it.
    busy_until: datetime | None = None
    # When a PAUSED sandbox is deleted (E2B kill) by its project's policy; null otherwise.
    # A deleteImminent event is pushed before it; resuming the sandbox keeps it.
    delete_at: datetime | None = None
    # Why it is paused at idleDeadlineAt: idle (activity moves the deadline), or a project
    # policy's maxRunningTime or quietHours (activity does not). Null when there is none.
    pause_reason: PauseReason | None = None
    # The idle timeout's factor: 1, or 2/4/8 while its idle pauses keep being undone within
    # IDLE_FLAP_WINDOW_SECONDS (flapping: health probes waking an auto-resume sandbox).
    idle_backoff: int = 1


@dataclass(frozen=True, slots=True)
class WarnWindows:
    """How long before each deadline frontends are warned: the idle pause
    (STATUS_API_WARN_BEFORE_SECONDS) and E2B's hard end
    (STATUS_API_LIFETIME_WARN_BEFORE_SECONDS)."""

    pause: timedelta
    lifetime: timedelta
    # STATUS_API_DELETE_WARN_BEFORE_SECONDS: before a policy deletes a paused sandbox.
    delete: timedelta = timedelta(hours=1)


class Imminent(NamedTuple):
    pause: bool
    lifetime_end: bool


NOTHING_IMMINENT = Imminent(pause=False, lifetime_end=False)


def imminent(doc: StatusDoc, now: datetime, windows: WarnWindows) -> Imminent:
    return Imminent(
        pause=_within(doc, doc.idle_deadline_at, now, windows.pause),
        lifetime_end=_within(doc, doc.max_lifetime_at, now, windows.lifetime),
    )


def _within(doc: StatusDoc, deadline: datetime | None, now: datetime, window: timedelta) -> bool:
    """A window of 0 (a policy's `warnBeforeSeconds: 0`) flags nothing."""
    return (
        doc.status is Status.RUNNING
        and deadline is not None
        and bool(window)
        and deadline - now <= window
    )


def sandbox_status(doc: StatusDoc, now: datetime, windows: WarnWindows) -> SandboxStatus:
    return _view(SandboxStatus, doc, imminent(doc, now, windows))


def fleet_sandbox(doc: StatusDoc, last_activity_source: str | None) -> FleetSandbox:
    """A sandbox of the fleet list (the imminent flags left false there)."""
    view = _view(FleetSandbox, doc, NOTHING_IMMINENT)
    return msgspec.structs.replace(view, last_activity_source=last_activity_source)


_View = TypeVar("_View", bound=SandboxStatus)


def _view(kind: type[_View], doc: StatusDoc, flags: Imminent) -> _View:
    return kind(
        project_id=doc.project_id,
        sandbox_id=doc.sandbox_id,
        status=doc.status,
        last_active_at=doc.last_active_at,
        poll_after_ms=POLL_AFTER_MS[doc.status],
        status_changed_at=doc.status_changed_at,
        timeout_at=doc.timeout_at,
        template_id=doc.template_id,
        metadata=doc.metadata,
        idle_deadline_at=doc.idle_deadline_at,
        pause_reason=doc.pause_reason,
        delete_at=doc.delete_at,
        busy_until=doc.busy_until,
        pause_imminent=flags.pause,
        max_lifetime_at=doc.max_lifetime_at,
        lifetime_end_imminent=flags.lifetime_end,
        auto_pause=doc.auto_pause,
        auto_resume=doc.auto_resume,
        idle_backoff=doc.idle_backoff,
    )


class Caller(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Optional body of activity and wake: who is calling, recorded with the fact (it answers
    "why won't it pause?" in the history): a browser (`ui`), the app's API (`api`), an agent
    working in the sandbox (`agent`) or the app's backend (`backend`). `busyUntil` (activity
    only): the caller's task runs until then, so the sandbox is not paused for idleness before
    it (a project policy's maximum running time and quiet hours still apply)."""

    source: Literal["ui", "api", "agent", "backend"] = "ui"
    busy_until: datetime | None = None


class ActivityAnswer(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    sandbox_id: str
    recorded: bool


class ActionAnswer(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    sandbox_id: str
    status: Status
    poll_after_ms: int | None


class PauseWarning(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Pushed once per pause deadline (again when activity moves it)."""

    sandbox_id: str
    project_id: str | None
    idle_deadline_at: datetime
    seconds_left: int
    # idle, or the policy that pauses it whatever the activity (maxRunningTime, quietHours).
    reason: PauseReason = PauseReason.IDLE


class DeleteWarning(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Pushed once per paused sandbox, before its project's policy deletes it (E2B kill):
    resume it to keep it."""

    sandbox_id: str
    project_id: str | None
    delete_at: datetime
    seconds_left: int


class LifetimeWarning(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Pushed once per run, before E2B ends it whatever the activity (maxLifetimeAt)."""

    sandbox_id: str
    project_id: str | None
    max_lifetime_at: datetime
    seconds_left: int


class Gone(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Pushed when a project has no live sandbox (killed, or none yet)."""

    project_id: str | None
    sandbox_id: str | None


class Snapshot(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Pushed before the current state when a stream cannot send the changes one by one: what
    follows replaces what the client holds."""

    RESUME: ClassVar[str] = "resume"  # a resume the change feed could not serve whole
    REBUILD: ClassVar[str] = "rebuild"  # the read model was rebuilt (a replay)

    project_id: str | None
    reason: str


class StreamTicket(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Opens one stream (`?ticket=`), once, within `expiresInSeconds`."""

    ticket: str
    expires_in_seconds: int


class Reauthenticate(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """Pushed as the stream ends because its token expired: open it again with a new one."""

    expired_at: datetime


class HistoryEvent(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    event_id: str
    type: str
    source: str
    occurred_at: datetime
    received_at: datetime
    # The fact's own data: for a pause request the idle deadline and last activity it judged,
    # for activity the caller, for E2B webhooks the payload's fields.
    data: dict[str, object]


class HistoryPage(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    sandbox_id: str
    project_id: str | None
    events: list[HistoryEvent]
    # Pass as `cursor` for the next (older) page; null: this was the last page.
    next_cursor: str | None
    # The newest fact that moved the sandbox's last activity, whatever the page: answers "why
    # won't it pause?" (who kept it busy) and "idle since when?".
    last_activity: HistoryEvent | None = None


class FleetSandbox(SandboxStatus, frozen=True, kw_only=True, rename="camel"):
    # Who last moved its activity: e2b-webhook (created, resumed), ui or api (heartbeats).
    last_activity_source: str | None = None


class FleetPage(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    sandboxes: list[FleetSandbox]
    # Sandboxes per status over the whole filter (not just this page), KILLED excluded.
    counts: dict[str, int]
    next_cursor: str | None
