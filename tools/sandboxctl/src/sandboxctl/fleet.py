"""`sandboxctl status`: a fleet summary from PostgreSQL (the projected state) and Redis (the read
model and the enforcer's indexes), and the problems an operator should look at (pure report;
reading is in fleet_stores.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class FleetSnapshot:
    now: datetime
    by_status: dict[str, int]  # PostgreSQL, every sandbox ever seen (KILLED kept as tombstones)
    last_event_at: datetime | None  # newest fact folded into PostgreSQL
    idle_indexed: int  # Redis: RUNNING sandboxes with an idle deadline
    due: int  # of them, deadline passed
    oldest_due_at: datetime | None
    transitional: int  # Redis: PAUSING or STARTING
    oldest_transitional_at: datetime | None
    lease_holder: str | None  # the ticker replica that ticks
    lease_ttl_seconds: float | None


def report(snap: FleetSnapshot, stuck_after_seconds: int) -> tuple[list[str], list[str]]:
    """Lines to print and the problems among them. Overdue and stuck are judged against
    ENFORCER_STUCK_AFTER_SECONDS: past it, the enforcer's own repair should have acted."""
    total = sum(snap.by_status.values())
    counts = ", ".join(f"{n} {s}" for s, n in sorted(snap.by_status.items())) or "none"
    lines = [f"sandboxes (PostgreSQL): {total} ({counts})"]
    if snap.last_event_at is not None:
        age = (snap.now - snap.last_event_at).total_seconds()
        lines.append(f"newest projected fact: {snap.last_event_at.isoformat()} ({age:.0f}s ago)")
    lines.append(f"idle index (Redis): {snap.idle_indexed} running, {snap.due} due now")
    running = snap.by_status.get("RUNNING", 0)
    if running != snap.idle_indexed:
        lines.append(
            f"note: PostgreSQL has {running} RUNNING, the idle index {snap.idle_indexed}; "
            "if this persists, the read model is behind (see OPERATIONS.md, stale UI)"
        )
    lines.append(f"transitional (PAUSING/STARTING): {snap.transitional}")
    if snap.lease_holder is None:
        lines.append("enforcer lease: free (no ticker holds it)")
    else:
        lines.append(
            f"enforcer lease: held by {snap.lease_holder} ({snap.lease_ttl_seconds or 0:.0f}s left)"
        )

    problems = []
    if snap.oldest_due_at is not None:
        overdue = (snap.now - snap.oldest_due_at).total_seconds()
        if overdue > stuck_after_seconds:
            who = "no ticker holds the lease" if snap.lease_holder is None else "ticks run"
            problems.append(
                f"{snap.due} sandbox(es) due, the oldest for {overdue:.0f}s ({who}): "
                "the enforcer is not pausing (see OPERATIONS.md, sandboxes not pausing)"
            )
    if snap.oldest_transitional_at is not None:
        stuck = (snap.now - snap.oldest_transitional_at).total_seconds()
        if stuck > 2 * stuck_after_seconds:
            problems.append(
                f"a sandbox has been PAUSING/STARTING for {stuck:.0f}s, past twice "
                f"ENFORCER_STUCK_AFTER_SECONDS ({stuck_after_seconds}s): is the ticker running?"
            )
    return lines, problems


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def as_json(snap: FleetSnapshot, problems: list[str]) -> dict[str, Any]:
    """`status --json`: the keys README documents; new keys may be added, none renamed."""
    return {
        "sandboxes": sum(snap.by_status.values()),
        "byStatus": dict(sorted(snap.by_status.items())),
        "newestProjectedFactAt": _iso(snap.last_event_at),
        "idleIndexed": snap.idle_indexed,
        "due": snap.due,
        "oldestDueAt": _iso(snap.oldest_due_at),
        "transitional": snap.transitional,
        "oldestTransitionalAt": _iso(snap.oldest_transitional_at),
        "leaseHolder": snap.lease_holder,
        "leaseTtlSeconds": snap.lease_ttl_seconds,
        "problems": problems,
    }
