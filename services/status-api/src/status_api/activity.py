"""Use case: a heartbeat from a frontend or the app becomes an activity fact, at most once per
sandbox per throttle window, so the idle deadline moves while a user works; and E2B's own
timeout is pushed out when it gets close, so E2B never kills a sandbox under an active user."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sandbox_common.commands import Command, ExtendTimeoutOrder, new_command
from sandbox_common.envelope import Envelope, FactType, Source
from sandbox_common.facts import Activity, Origin, new_fact
from sandbox_common.payloads import Subject
from sandbox_common.readmodel import Status, StatusDoc


class Throttle(Protocol):
    async def first_in_window(self, sandbox_id: str) -> bool: ...

    async def forget(self, sandbox_id: str) -> None: ...


class Publisher(Protocol):
    async def publish(self, envelope: Envelope) -> None: ...

    async def publish_command(self, command: Command) -> None: ...


# E2B extends a sandbox's end by at most an hour per refresh (`POST .../refreshes`, 0-3600 s).
MAX_REFRESH = timedelta(hours=1)


@dataclass(frozen=True)
class Heartbeat:
    """Who says the sandbox is in use, and until when an agent's task runs (if it says)."""

    source: Source
    busy_until: datetime | None = None

    def keep_alive(self, now: datetime, keep_alive: timedelta) -> timedelta:
        """How far ahead E2B's own end is kept: far enough for the task too, as far as one
        refresh reaches."""
        if self.busy_until is None:
            return keep_alive
        return max(keep_alive, min(self.busy_until - now, MAX_REFRESH))


@dataclass(frozen=True)
class Recorded:
    recorded: bool  # False: a heartbeat of this window was already recorded
    extended: bool = False  # True: E2B's own timeout is being pushed out too


def needs_more_e2b_time(
    doc: StatusDoc, now: datetime, keep_alive: timedelta, busy_until: datetime | None = None
) -> bool:
    """E2B kills (or auto-pauses) a sandbox at its own timeout, whatever our idle policy says.
    While a user is active, keep at least half the keep-alive window of E2B time ahead; while
    an agent's task runs, keep E2B's end past the task's (as far as one refresh reaches)."""
    if doc.status is not Status.RUNNING:
        return False
    hard_end = doc.max_lifetime_at
    if doc.timeout_at is not None and hard_end is not None and doc.timeout_at >= hard_end:
        return False  # already at E2B's hard end: no refresh reaches past it
    if doc.timeout_at is None:
        return True
    if busy_until is not None and doc.timeout_at < min(busy_until, now + MAX_REFRESH):
        return True
    return doc.timeout_at - now < keep_alive / 2


def extend_command(doc: StatusDoc, now: datetime, keep_alive: timedelta) -> Command:
    # One id per half window: heartbeats seen before E2B's new end reaches the read model
    # repeat the same command, and the actuator carries it out once.
    seconds = int(keep_alive.total_seconds())
    bucket = int(now.timestamp() // max(1.0, seconds / 2))
    return new_command(
        ExtendTimeoutOrder(timeout_seconds=seconds),
        Subject(doc.sandbox_id, doc.project_id),
        # The length in the id too: a busy agent's longer extension is not taken for a copy
        # of a heartbeat's shorter one.
        command_id=f"extend:{doc.sandbox_id}:{seconds}:{bucket}",
        issued_at=now,
    )


async def record_activity(
    doc: StatusDoc,
    beat: Heartbeat,
    throttle: Throttle,
    publisher: Publisher,
    keep_alive: timedelta = timedelta(minutes=10),
) -> Recorded:
    """A heartbeat that says until when an agent is busy is always recorded (throttling it
    away would lose the hold); others at most once per window."""
    first = await throttle.first_in_window(doc.sandbox_id)
    if not first and beat.busy_until is None:
        return Recorded(recorded=False)
    now = datetime.now(UTC)
    fact = new_fact(
        FactType.ACTIVITY,
        Activity(busy_until=beat.busy_until),
        Subject(doc.sandbox_id, doc.project_id, doc.team_id),
        Origin(str(uuid.uuid4()), beat.source, now),
    )
    try:
        await publisher.publish(fact)
    except BaseException:
        # Not recorded: the next heartbeat must not be throttled away.
        await throttle.forget(doc.sandbox_id)
        raise
    window = beat.keep_alive(now, keep_alive)
    if needs_more_e2b_time(doc, now, window, beat.busy_until):
        await publisher.publish_command(extend_command(doc, now, window))
        return Recorded(recorded=True, extended=True)
    return Recorded(recorded=True)
