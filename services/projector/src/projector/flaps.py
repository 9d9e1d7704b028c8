"""Flapping: our idle pause undone within the flap window by a resume (health probes or other
traffic waking an auto-resume sandbox, again and again). Pure: a state before and after a batch
in, the facts that record each newly seen flap out.

The flap itself is already in the state (its recent idle pauses and resumes), and so is the
back-off it earns (readmodel.deadlines); these facts put it in the sandbox's history and count it
in a metric. Their ids are deterministic, so a batch delivered again derives the same ones.
"""

from __future__ import annotations

from projector.domain import SandboxState
from sandbox_common.envelope import Envelope, FactType, Source
from sandbox_common.facts import Flapping, Origin, new_fact
from sandbox_common.payloads import Subject
from sandbox_common.readmodel import DeadlineRule


def flap_facts(
    before: SandboxState | None, after: SandboxState, rule: DeadlineRule
) -> list[Envelope]:
    seen = set(rule.flaps(before.idle_pauses, before.resumes)) if before else set()
    now = rule.flaps(after.idle_pauses, after.resumes)
    backoff = rule.backoff(len(now))
    subject = Subject(after.sandbox_id, after.project_id, after.team_id)
    return [
        new_fact(
            FactType.FLAPPING,
            Flapping(paused_at=paused, resumed_at=resumed, flaps=len(now), idle_backoff=backoff),
            subject,
            Origin(f"flap:{after.sandbox_id}:{paused.isoformat()}", Source.PROJECTOR, resumed),
        )
        for paused, resumed in now
        if (paused, resumed) not in seen
    ]
