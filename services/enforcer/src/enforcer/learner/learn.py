"""Use case: one learner run. For each adaptive project policy: its sandboxes' uses over the
lookback window, the shortest timeout within its bounds that meets its regret target
(whatif.learn), and, when the value changed or is a day old, the policy again with what was
learned, amending the one read (never overwriting a policy set meanwhile)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple, Protocol

import msgspec

from enforcer.learner import metrics
from sandbox_common.envelope import Envelope, Source
from sandbox_common.facts import Origin, policy_fact
from sandbox_common.policies import Policy
from sandbox_common.policies.model import AdaptiveIdle
from sandbox_common.whatif.learn import Gaps, learn_idle
from sandbox_common.whatif.trace import Trace

log = logging.getLogger("learner")
ACTOR = "adaptive-idle"
# Republished with the same value once a day, so `learned.at` says the value still holds.
REFRESH = timedelta(days=1)


class AdaptivePolicy(NamedTuple):
    project_id: str
    policy: Policy
    idle: AdaptiveIdle
    event_id: str  # the policy fact in force, which the amendment amends


class History(Protocol):
    async def adaptive(self) -> list[AdaptivePolicy]: ...

    async def traces(self, project_id: str, since: datetime) -> list[Trace]: ...


class Publisher(Protocol):
    async def publish(self, envelope: Envelope) -> None: ...


@dataclass(frozen=True)
class LearnOptions:
    lookback: timedelta
    regret_seconds: float


def due(idle: AdaptiveIdle, seconds: int, now: datetime) -> bool:
    learned = idle.learned
    return learned is None or learned.seconds != seconds or now - learned.at >= REFRESH


async def learn_all(
    history: History,
    publisher: Publisher,
    options: LearnOptions,
    clock: Callable[[], datetime],
) -> list[Envelope]:
    """The amendments published, one per project whose learned value was due."""
    published = []
    policies = await history.adaptive()
    metrics.ADAPTIVE_PROJECTS.set(len(policies))
    for found in policies:
        now = clock()
        since = now - options.lookback
        traces = await history.traces(found.project_id, since)
        idle = found.idle
        gaps = Gaps.of(traces, until=now.timestamp())
        learned = learn_idle(idle, gaps, options.regret_seconds, since, now)
        if not due(idle, learned.seconds, now):
            continue
        adapted = msgspec.structs.replace(idle, learned=learned)
        amended = msgspec.structs.replace(found.policy, idle=adapted)
        origin = Origin(str(uuid.uuid4()), Source.ENFORCER, now)
        fact = policy_fact(found.project_id, amended, origin, ACTOR, amends=found.event_id)
        await publisher.publish(fact)
        metrics.ADAPTIVE_UPDATES.inc()
        published.append(fact)
        before = idle.learned.seconds if idle.learned else None
        log.info(
            "Learned idle timeout %ds for project %s (was %s; %d gaps, %d pauses, %d regrets)",
            learned.seconds,
            found.project_id,
            f"{before}s" if before is not None else f"{idle.max_seconds}s, the upper bound",
            learned.gaps,
            learned.pauses,
            learned.regrets,
            extra={"project_id": found.project_id, "why": learned.why},
        )
    return published


def traces_of(rows: Sequence[tuple[str, str, float]], ended: dict[str, float]) -> list[Trace]:
    """(sandbox id, fact type, epoch seconds) rows of uses into one trace per sandbox."""
    by_id: dict[str, Trace] = {}
    for sandbox_id, _type, at in rows:
        trace = by_id.get(sandbox_id)
        if trace is None:
            trace = by_id[sandbox_id] = Trace(sandbox_id, ended_at=ended.get(sandbox_id))
        trace.uses.append(at)
    return list(by_id.values())
