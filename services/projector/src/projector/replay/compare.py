"""Gathers the live read models for `replay --verify` and hands them to the pure comparisons."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from projector.adapters.postgres import policy_row
from projector.domain import SandboxState
from projector.replay import verify
from projector.replay.fold import Rebuild
from projector.replay.pg_shadow import policy_compared
from sandbox_common.policies import PolicyBook
from sandbox_common.readmodel import DeadlineRule, Status, StatusDoc, to_doc, transitional_since
from sandbox_common.readmodel.reader import ReadModelReader
from sandbox_common.readmodel.shadow import pointers


def postgres(
    rebuild: Rebuild,
    live_states: Mapping[str, SandboxState],
    live_history: set[tuple[str, datetime]],
    live_policies: Mapping[str, tuple[Any, ...]],
) -> list[str]:
    rebuilt_policies = {
        subject: policy_compared(policy_row(change)) for subject, change in rebuild.policies.items()
    }
    return (
        verify.compare_states(rebuild.states, live_states)
        + verify.compare_history(rebuild.seen, live_history)
        + verify.compare_policies(rebuilt_policies, live_policies)
    )


async def redis(
    reader: ReadModelReader,
    states: Iterable[SandboxState],
    rule: DeadlineRule,
    book: PolicyBook,
) -> list[str]:
    now = datetime.now(UTC)
    rebuilt = list(states)
    expected: dict[str, StatusDoc] = {}
    for st in rebuilt:
        doc = to_doc(st, 0, now, rule, book)
        if doc is not None:
            expected[st.sandbox_id] = doc
    live = await reader.docs(sorted(expected.keys() | await reader.all_sandbox_ids()))
    out = verify.compare_docs(expected, live)
    idle = {
        sid: d.idle_deadline_at.timestamp()
        for sid, d in expected.items()
        if d.idle_deadline_at is not None
    }
    out += verify.compare_scores("idle-deadlines", idle, await reader.idle_deadlines())
    transitional = {
        sid: since.timestamp()
        for sid, d in expected.items()
        if (since := transitional_since(d)) is not None
    }
    out += verify.compare_scores("transitional", transitional, await reader.transitional())
    hard_ends = {
        sid: d.max_lifetime_at.timestamp()
        for sid, d in expected.items()
        if d.max_lifetime_at is not None
    }
    out += verify.compare_scores("hard-ends", hard_ends, await reader.hard_ends())
    deletes = {
        sid: d.delete_at.timestamp() for sid, d in expected.items() if d.delete_at is not None
    }
    out += verify.compare_scores("deletes", deletes, await reader.deletes())
    served = pointers(rebuilt)
    projects = sorted(
        served.keys() | {d.project_id for d in live.values() if d.project_id is not None}
    )
    out += verify.compare_served(served, _served(await reader.pointers(projects), live))
    return out


def _served(
    pointed: Mapping[str, str | None], live: Mapping[str, StatusDoc]
) -> dict[str, str | None]:
    """project -> the sandbox status-api would serve for it (a live, not killed one)."""
    served: dict[str, str | None] = {}
    for project, sid in pointed.items():
        doc = live.get(sid) if sid else None
        served[project] = sid if doc is not None and doc.status is not Status.KILLED else None
    return served
