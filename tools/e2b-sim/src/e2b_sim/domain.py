"""The sandbox state machine as pure decisions: (sandbox, command, now) -> outcome. No I/O.

Status codes and messages follow reference/e2b.md. Choices where E2B's behaviour is not
documented are marked "unconfirmed" so nobody mistakes them for facts.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from e2b_sim.keepalive import keep_alive, timeout_refusal
from e2b_sim.model import Emitted, Outcome, Sandbox, State, execution, visible_state
from sandbox_common.e2b import LifecycleType

# E2B raises a shorter refresh to its default timeout (handlers/sandbox_refresh.go).
MIN_REFRESH = timedelta(seconds=15)
# E2B's anti-thrash floor for the timeout an auto-resume sets (handlers/auto_resume_timeout.go).
MIN_AUTO_RESUME_TIMEOUT = 60

# Re-exported: callers read the decisions and their types from one module.
__all__ = [
    "Emitted",
    "Outcome",
    "Sandbox",
    "State",
    "connect",
    "create",
    "execution",
    "kill",
    "pause",
    "refresh",
    "resume",
    "set_timeout",
    "settle",
    "timeout_refusal",
    "traffic",
    "visible_state",
]


def create(sb: Sandbox) -> Outcome:
    return Outcome(201, sb, (Emitted(LifecycleType.CREATED, sb),))


def pause(sb: Sandbox | None, now: datetime, transition: timedelta) -> Outcome:
    if sb is None or sb.state in (State.KILLED, State.KILLING):
        return _not_found(sb)
    if sb.state is State.PAUSED:
        return Outcome(409, message=f"Sandbox {sb.sandbox_id} is already paused")
    if sb.state is State.PAUSING:
        return Outcome(409, message=f"Sandbox cannot be paused while in '{sb.state}' state")
    if transition > timedelta(0):
        return Outcome(204, replace(sb, state=State.PAUSING, settles_at=now + transition))
    return _finish_pause(sb, now, 204)


def connect(sb: Sandbox | None, timeout: int, execution_id: str, now: datetime) -> Outcome:
    """200 keeps a running sandbox (end only extended, within the maximum instance length);
    201 resumes a paused one."""
    if sb is None or sb.state is State.KILLED:
        return _not_found(sb)
    if sb.state is State.KILLING:
        return Outcome(409, message=f"Sandbox {sb.sandbox_id} is being killed")
    if sb.state is State.RUNNING:
        return keep_alive(sb, timedelta(seconds=timeout), now, allow_shorter=False, status=200)
    return _resume(sb, timeout, execution_id, now)


def resume(sb: Sandbox | None, timeout: int, execution_id: str, now: datetime) -> Outcome:
    """The deprecated call: 409 when the sandbox already runs; one being killed is not found."""
    if sb is not None and sb.state is State.RUNNING:
        return Outcome(409, message=f"Sandbox {sb.sandbox_id} is already running")
    if sb is not None and sb.state is State.KILLING:
        return _not_found(sb)
    return connect(sb, timeout, execution_id, now)


def set_timeout(sb: Sandbox | None, timeout: int, now: datetime) -> Outcome:
    """New end = now + timeout, shorter or longer (capped by the maximum instance length)."""
    if sb is None or sb.state is State.KILLED:
        return _not_found(sb)
    if sb.state is not State.RUNNING:
        return Outcome(409, message=f"Sandbox {sb.sandbox_id} is not running")
    return keep_alive(sb, timedelta(seconds=timeout), now, allow_shorter=True, status=204)


def refresh(sb: Sandbox | None, duration: int, now: datetime) -> Outcome:
    """Extend only, by at least 15 s. Unconfirmed: a paused sandbox is not in E2B's running
    cache, hence 404."""
    if sb is None or sb.state in (State.KILLED, State.PAUSED):
        return _not_found(sb)
    if sb.state is not State.RUNNING:
        return Outcome(409, message=f"Sandbox cannot be refreshed while in '{sb.state}' state")
    wanted = max(timedelta(seconds=duration), MIN_REFRESH)
    return keep_alive(sb, wanted, now, allow_shorter=False, status=204)


def traffic(sb: Sandbox | None, execution_id: str, now: datetime) -> Outcome:
    """A request reaches the sandbox (through E2B's proxy): 200 it runs, nothing changes; 201 it
    was paused with auto-resume and now runs again, exactly as a resume; 409 it is paused
    without auto-resume and stays paused (E2B's proxy answers the caller "not found")."""
    if sb is None or sb.state in (State.KILLED, State.KILLING):
        return _not_found(sb)
    if sb.state is State.RUNNING:
        return Outcome(200, sb)
    if not sb.auto_resume:
        message = f"Sandbox {sb.sandbox_id} is paused and auto-resume is off: nothing reached it"
        return Outcome(409, message=message)
    timeout = min(
        max(sb.auto_resume_timeout, MIN_AUTO_RESUME_TIMEOUT),
        int(sb.max_length.total_seconds()),
    )
    return _resume(sb, timeout, execution_id, now)


def kill(sb: Sandbox | None, now: datetime, transition: timedelta) -> Outcome:
    if sb is None or sb.state in (State.KILLED, State.KILLING):
        return _not_found(sb)
    if sb.state is State.RUNNING and transition > timedelta(0):
        killing = replace(sb, state=State.KILLING, settles_at=now + transition)
        return Outcome(204, killing)
    return _finish_kill(sb, now, "request")


def settle(sb: Sandbox, now: datetime) -> Outcome | None:
    """What the clock does: ends transitional states and runs out timeouts (kill or pause)."""
    if sb.settles_at is not None and sb.settles_at <= now:
        if sb.state is State.PAUSING:
            return _finish_pause(sb, now, 200)
        if sb.state is State.KILLING:
            return _finish_kill(sb, now, sb.kill_reason)
    if sb.state is State.RUNNING and sb.end_at <= now:
        # E2B's auto-pause emits a plain paused event: no reason, like an API pause.
        return _finish_pause(sb, now, 200) if sb.auto_pause else _finish_kill(sb, now, "timeout")
    return None


def _resume(sb: Sandbox, timeout: int, execution_id: str, now: datetime) -> Outcome:
    # A connect during a pause waits for the pause to finish, then resumes (both events).
    finished = _finish_pause(sb, now, 201).events if sb.state is State.PAUSING else ()
    running = replace(
        sb,
        state=State.RUNNING,
        execution_id=execution_id,
        started_at=now,
        end_at=now + timedelta(seconds=timeout),
        stopped_at=None,
        settles_at=None,
    )
    return Outcome(201, running, (*finished, Emitted(LifecycleType.RESUMED, running)))


def _finish_pause(sb: Sandbox, now: datetime, status: int) -> Outcome:
    paused = replace(sb, state=State.PAUSED, stopped_at=now, settles_at=None)
    data = {"execution": execution(paused, now)}
    return Outcome(status, paused, (Emitted(LifecycleType.PAUSED, paused, data),))


def _finish_kill(sb: Sandbox, now: datetime, reason: str) -> Outcome:
    killed = replace(sb, state=State.KILLED, stopped_at=sb.stopped_at or now, settles_at=None)
    data = {"execution": execution(killed, now), "kill_reason": reason}
    return Outcome(204, killed, (Emitted(LifecycleType.KILLED, killed, data),))


def _not_found(sb: Sandbox | None) -> Outcome:
    name = f"Sandbox {sb.sandbox_id}" if sb is not None else "Sandbox"
    return Outcome(404, message=f"{name} not found")
