"""Reconciliation rules: our view of each sandbox against E2B's list, and the corrective facts
(source reconciler) that bring ours in line. Pure: no I/O, the time is passed in.

E2B's webhooks are fire-and-forget, so some never reach us. The list API is the truth about
which sandboxes exist and whether each runs or is paused; a sandbox that is not listed is gone
(killed), once a GET of it answers 404. Transitions we started ourselves (PAUSING, STARTING) are
left to the actuator and the stuck-state repair.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import msgspec

from sandbox_common.e2b_api.listing import ListedSandbox
from sandbox_common.envelope import Envelope, FactType, Source
from sandbox_common.facts import Lifecycle, Origin, new_fact
from sandbox_common.payloads import Subject
from sandbox_common.readmodel import Status

# E2B's endAt and ours differ by rounding and by the time between a call and its fact.
TIMEOUT_SLACK = timedelta(seconds=5)


# What every correction says, and why.
_SAYS = Lifecycle(reason="reconciled with E2B's list")
# One item of E2B's list, as the E2B client reads it.
Upstream = ListedSandbox


@dataclass(frozen=True)
class Known:
    """What we hold about a sandbox (PostgreSQL, the projector's truth)."""

    sandbox_id: str
    status: Status | None
    timeout_at: datetime | None
    # Whether E2B's own lifecycle of it (on timeout: pause or kill; auto-resume) was read yet.
    lifecycle_known: bool = True


@dataclass
class Plan:
    facts: list[Envelope] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)  # listed upstream, never heard of
    state_fixed: list[str] = field(default_factory=list)
    timeout_fixed: list[str] = field(default_factory=list)
    killed: list[str] = field(default_factory=list)
    lifecycle_read: list[str] = field(default_factory=list)  # E2B's lifecycle now known


def missing_upstream(known: Mapping[str, Known], upstream: Mapping[str, Upstream]) -> list[str]:
    """Sandboxes we think alive that E2B does not list: killed, if a GET confirms it."""
    return sorted(
        sid
        for sid, k in known.items()
        if sid not in upstream and k.status is not None and k.status is not Status.KILLED
    )


def plan(
    known: Mapping[str, Known],
    upstream: Mapping[str, Upstream],
    gone: set[str],
    *,
    observed_at: datetime,
    project_key: str,
) -> Plan:
    """Corrective facts. `observed_at` is when the listing began: a later webhook (a newer
    truth) then still wins over the correction in the fold's order."""
    out = Plan()

    def fact(sid: str, kind: FactType, at: datetime, tag: str, said: Lifecycle = _SAYS) -> None:
        up = upstream.get(sid)
        payload = msgspec.structs.replace(
            said,
            template_id=(up.template_id or None) if up else None,
            metadata=(dict(up.metadata) or None) if up else None,
        )
        out.facts.append(
            new_fact(
                kind,
                payload,
                Subject(sid, up.metadata.get(project_key) if up else None),
                Origin(
                    f"reconciler:{sid}:{kind.rsplit('.', 1)[-1]}:{tag}",
                    Source.RECONCILER,
                    at,
                    received_at=observed_at,
                ),
            )
        )

    stamp = observed_at.isoformat()
    for sid, up in sorted(upstream.items()):
        mine = known.get(sid)
        if mine is not None and mine.status is Status.KILLED:
            continue  # killed is absorbing; E2B listing it again would be its own anomaly
        if mine is None or mine.status is None:
            out.unknown.append(sid)
            created_at = up.started_at or observed_at
            fact(sid, FactType.CREATED, min(created_at, observed_at), created_at.isoformat())
            if up.state == "paused":
                fact(sid, FactType.PAUSED, observed_at, stamp)
        elif up.state == "paused" and mine.status in (Status.RUNNING, Status.PAUSING):
            out.state_fixed.append(sid)
            fact(sid, FactType.PAUSED, observed_at, stamp)
        elif up.state == "running" and mine.status is Status.PAUSED:
            out.state_fixed.append(sid)
            fact(sid, FactType.RESUMED, observed_at, stamp)
        if (
            up.state == "running"
            and up.end_at is not None
            and (
                mine is None
                or mine.timeout_at is None
                or abs(mine.timeout_at - up.end_at) > TIMEOUT_SLACK
            )
        ):
            out.timeout_fixed.append(sid)
            said = Lifecycle(reason=_SAYS.reason, set_timeout=up.end_at)
            fact(sid, FactType.UPDATED, observed_at, stamp, said)
    for sid in sorted(gone):
        out.killed.append(sid)
        said = Lifecycle(reason=_SAYS.reason, kill_reason="not found upstream")
        fact(sid, FactType.KILLED, observed_at, stamp, said)
    return out


def lifecycle_unknown(
    known: Mapping[str, Known], upstream: Mapping[str, Upstream], limit: int
) -> list[str]:
    """Sandboxes E2B lists and we know, whose E2B lifecycle we have not read yet: at most
    `limit` per pass (one GET each), in id order."""
    unread = (sid for sid in upstream if (k := known.get(sid)) and not k.lifecycle_known)
    return sorted(unread)[:limit]


def lifecycle_fact(details: Upstream, observed_at: datetime) -> Envelope | None:
    """An UPDATED fact carrying E2B's lifecycle of the sandbox (GET /sandboxes/{id}); None when
    E2B's answer did not say (asked again next pass). The id repeats for the same reading."""
    on_timeout, auto_resume = details.on_timeout, details.auto_resume
    if on_timeout is None and auto_resume is None:
        return None
    sid = details.sandbox_id
    return new_fact(
        FactType.UPDATED,
        Lifecycle(reason="lifecycle read from E2B", on_timeout=on_timeout, auto_resume=auto_resume),
        Subject(sid),
        Origin(
            f"reconciler:{sid}:lifecycle:{on_timeout}:{auto_resume}", Source.RECONCILER, observed_at
        ),
    )
