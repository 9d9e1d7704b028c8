"""The adaptive idle learner's run: what it learns for each adaptive project, the amendment it
publishes (amending the policy it read), and when it publishes nothing."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from enforcer.learner.learn import ACTOR, AdaptivePolicy, LearnOptions, learn_all, traces_of
from sandbox_common.envelope import Envelope, FactType, Source
from sandbox_common.facts import policy_view
from sandbox_common.policies import Policy
from sandbox_common.policies.model import AdaptiveIdle
from sandbox_common.whatif.trace import Trace
from tests.unit.test_whatif import sessions

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
OPTIONS = LearnOptions(lookback=timedelta(days=14), regret_seconds=300)
IDLE = AdaptiveIdle(mode="adaptive", min_seconds=30, max_seconds=1800, target_regret=0.0)


@dataclass
class History:
    policies: list[AdaptivePolicy]
    by_project: dict[str, list[Trace]]
    asked: list[tuple[str, datetime]] = field(default_factory=list)

    async def adaptive(self) -> list[AdaptivePolicy]:
        return self.policies

    async def traces(self, project_id: str, since: datetime) -> list[Trace]:
        self.asked.append((project_id, since))
        return self.by_project.get(project_id, [])


@dataclass
class Published:
    facts: list[Envelope] = field(default_factory=list)

    async def publish(self, envelope: Envelope) -> None:
        self.facts.append(envelope)


def users(seed: int) -> list[Trace]:
    """Think times up to 90 s, hour-long breaks: the best timeout with no regret is 90 s."""
    rng = random.Random(seed)
    start = NOW.timestamp() - 3 * 86_400
    found = []
    for _ in range(3):
        trace = sessions(rng, think=[10, 45, 90], breaks=[3600], uses=60)
        trace.uses = [start + t for t in trace.uses]
        trace.ended_at = (trace.ended_at or 0) + start
        found.append(trace)
    return found


async def test_each_adaptive_project_gets_its_learned_timeout_as_an_amendment() -> None:
    policy = Policy(idle=IDLE, warn_before_seconds=60)
    history = History([AdaptivePolicy("p1", policy, IDLE, "e1")], {"p1": users(1)})
    sink = Published()
    await learn_all(history, sink, OPTIONS, lambda: NOW)
    (fact,) = sink.facts
    view = policy_view(fact)
    assert (view.project_id, view.amends, fact.data["actor"]) == ("p1", "e1", ACTOR)
    assert fact.source is Source.ENFORCER
    assert view.policy.warn_before_seconds == 60  # the rest of the policy as it was
    assert view.policy.idle is not None
    learned = view.policy.idle.learned
    assert learned is not None
    assert (learned.seconds, learned.regrets, learned.at) == (90, 0, NOW)
    assert learned.since == NOW - OPTIONS.lookback
    assert view.policy.idle_seconds() == 90
    assert history.asked == [("p1", NOW - OPTIONS.lookback)]


async def test_an_unchanged_value_is_republished_only_once_a_day() -> None:
    sink = Published()
    history = History([AdaptivePolicy("p1", Policy(idle=IDLE), IDLE, "e1")], {"p1": users(1)})
    await learn_all(history, sink, OPTIONS, lambda: NOW)
    amended = policy_view(sink.facts[0]).policy
    assert amended.idle is not None
    held = AdaptivePolicy("p1", amended, amended.idle, sink.facts[0].event_id)
    history.policies = [held]
    await learn_all(history, sink, OPTIONS, lambda: NOW + timedelta(hours=1))
    assert len(sink.facts) == 1
    await learn_all(history, sink, OPTIONS, lambda: NOW + timedelta(days=1))
    assert len(sink.facts) == 2
    assert policy_view(sink.facts[1]).amends == held.event_id


async def test_a_project_with_too_little_history_keeps_its_upper_bound() -> None:
    sink = Published()
    history = History([AdaptivePolicy("p2", Policy(idle=IDLE), IDLE, "e9")], {})
    await learn_all(history, sink, OPTIONS, lambda: NOW)
    (fact,) = sink.facts
    idle = policy_view(fact).policy.idle
    assert idle is not None
    assert idle.learned is not None
    assert (idle.learned.seconds, idle.learned.gaps) == (1800, 0)
    assert idle.learned.why.startswith("too little data")


def test_rows_of_uses_become_one_trace_per_sandbox() -> None:
    rows = [
        ("a", FactType.CREATED, 0.0),
        ("b", FactType.CREATED, 5.0),
        ("a", FactType.RESUMED, 9.0),
    ]
    traces = {t.sandbox_id: t for t in traces_of(rows, {"a": 20.0})}
    assert (traces["a"].moments(), traces["a"].ended_at) == ([0.0, 9.0], 20.0)
    assert (traces["b"].moments(), traces["b"].ended_at) == ([5.0], None)
