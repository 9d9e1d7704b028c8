"""`sandboxctl simulate` without a broker: records as the topic holds them, the policies the
topic set, the candidate beside the policy in force, and what is printed."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from sandbox_common import envelope as env
from sandbox_common.envelope import Envelope, FactType, Source
from sandbox_common.facts import Origin, policy_fact
from sandbox_common.policies import Policy
from sandbox_common.whatif.facts import TopicFacts
from sandbox_common.whatif.ledger import tally
from sandbox_common.whatif.replay import Frame, Prices
from sandboxctl import simulate_report as report
from sandboxctl.errors import OperatorError
from sandboxctl.settings import Settings
from sandboxctl.simulate_cmd import scenarios, tick_seconds

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def fact(kind: FactType, sandbox: str, project: str, at: float, **data: object) -> bytes:
    moment = T0 + timedelta(seconds=at)
    return env.encode(
        Envelope(
            event_id=f"{sandbox}-{kind}-{at}",
            type=kind,
            source=Source.E2B_WEBHOOK,
            sandbox_id=sandbox,
            project_id=project,
            occurred_at=moment,
            received_at=moment,
            data=dict(data),
        )
    )


def policy(project: str | None, at: float, seconds: int) -> bytes:
    origin = Origin(f"policy-{project}-{at}", Source.ADMIN, T0 + timedelta(seconds=at))
    return env.encode(policy_fact(project, Policy(idle_timeout_seconds=seconds), origin))


def the_topic() -> list[bytes]:
    records = [
        policy(None, -100, 600),  # the default: 600 s
        policy("p1", -10, 300),  # p1's newest: 300 s
        policy("p1", -50, 900),  # an older one of p1's, read later
        fact(FactType.CREATED, "s1", "p1", 0, metadata={"projectId": "p1"}),
        fact(FactType.ACTIVITY, "s1", "p1", 100),
        fact(FactType.RESUMED, "s1", "p1", 1000),
        fact(FactType.KILLED, "s1", "p1", 2000, execution={"vcpu_count": 1, "memory_mb": 1024}),
        fact(FactType.CREATED, "s2", "p2", 0),
        fact(FactType.KILLED, "s2", "p2", 2000),
        b"not an envelope",
    ]
    random.Random(3).shuffle(records)
    return records


def figures() -> tuple[TopicFacts, dict[str, object]]:
    facts = TopicFacts()
    for record in the_topic():
        facts.add(record)
    rules = scenarios(facts, Policy(idle_timeout_seconds=60), {"p1"}, Settings(), tick=0)
    frame = Frame(
        start=T0.timestamp(),
        end=T0.timestamp() + 2000,
        regret_seconds=300,
        prices=Prices(vcpu_second=1.0, gib_second=0.0),
    )
    ledger = tally(facts.traces.of_projects(None), rules, frame)
    header = {
        "facts": facts.facts,
        "sandboxes": 2,
        "from": frame.start,
        "to": frame.end,
        "candidatePolicy": '{"idleTimeoutSeconds":60}',
        "notSimulated": [],
        "unreadable": facts.unreadable,
    }
    return facts, {
        "json": report.as_json(ledger, header),
        "lines": report.as_lines(ledger, header, 1),
    }


def test_the_newest_policy_of_each_project_and_the_default_are_read_from_the_topic() -> None:
    facts, _ = figures()
    assert facts.policy("p1") == Policy(idle_timeout_seconds=300)
    assert facts.policy(None) == Policy(idle_timeout_seconds=600)
    assert facts.policy("p2") is None
    assert facts.unreadable == 1
    assert (facts.traces.facts, facts.facts) == (6, 9)  # and three policy facts


def test_the_candidate_is_replayed_beside_the_policy_in_force_with_hand_computed_figures() -> None:
    _, out = figures()
    document = out["json"]
    assert isinstance(document, dict)
    p1, p2 = document["projects"]
    # p1 in force (300 s): runs 100 + 300 + 300, pauses at 400 and 1300, one return.
    assert p1["projectId"] == "p1"
    assert p1["inForce"]["runningSeconds"] == 700
    assert (p1["inForce"]["pauses"], p1["inForce"]["regrets"]) == (2, 0)
    # The candidate (60 s): pauses at 60 (back 40 s later: a regret), 160 and 1060.
    assert p1["candidate"]["runningSeconds"] == 180
    assert (p1["candidate"]["pauses"], p1["candidate"]["regrets"]) == (3, 1)
    assert p1["candidate"]["returnsToPaused"] == 2
    assert p1["candidate"]["idleAvoidedSeconds"] == 2000 - 180
    assert p1["candidate"]["cost"] == 180  # 1 vCPU at 1 per second
    # p2 is not a candidate project: the default (600 s) on both sides, 2 vCPUs by default.
    assert p2["inForce"] == p2["candidate"]
    assert (p2["candidate"]["runningSeconds"], p2["candidate"]["cost"]) == (600, 1200)
    assert document["total"]["candidate"]["runningSeconds"] == 780
    assert document["total"]["noEnforcement"]["runningSeconds"] == 4000


def test_the_text_shows_the_most_changed_projects_and_the_total() -> None:
    _, out = figures()
    lines = out["lines"]
    assert isinstance(lines, list)
    text = "\n".join(lines)
    assert "1 unreadable record(s) skipped" in text
    assert any(line.startswith("p1 ") for line in lines)
    assert not any(line.startswith("p2 ") for line in lines)  # --limit 1: p1 changed most
    assert "... 1 more project(s)" in text
    assert lines[-1] == (
        "candidate against the policy in force: pauses +33%, regrets +inf,"
        " running time -40%, cost -27%"  # cost 1,900 -> 1,380
    )


def test_the_checkers_tick_comes_from_the_schedule() -> None:
    assert tick_seconds("*/2 * * * *") == 120
    assert tick_seconds("5s") == 5
    with pytest.raises(OperatorError):
        tick_seconds("every now and then")


def test_a_candidate_policy_is_refused_naming_its_field(
    tmp_path: object, capsys: pytest.CaptureFixture[str]
) -> None:
    from pathlib import Path

    from sandboxctl.cli import main

    path = Path(str(tmp_path)) / "policy.json"
    path.write_text(json.dumps({"idleTimeoutSeconds": 1}))
    with pytest.raises(SystemExit) as exited:
        main(["simulate", "--policy", str(path)])
    assert exited.value.code == 1
    assert capsys.readouterr().err.startswith("sandboxctl simulate: --policy: idleTimeoutSeconds")


def test_an_adaptive_candidate_learns_each_projects_timeout_from_its_own_demand() -> None:
    import random as rand

    from sandbox_common.policies.model import AdaptiveIdle
    from sandboxctl.simulate_cmd import learned_candidates
    from tests.unit.test_whatif import sessions

    rng = rand.Random(2)
    quick = [sessions(rng, think=[10, 20, 30], breaks=[3600], uses=80) for _ in range(2)]
    slow = [sessions(rng, think=[60, 150, 240], breaks=[3600], uses=80) for _ in range(2)]
    for trace in quick:
        trace.project_id = "quick"
    for trace in slow:
        trace.project_id = "slow"
    idle = AdaptiveIdle(mode="adaptive", min_seconds=15, max_seconds=1800, target_regret=0.0)
    end = max(t.ended_at or 0 for t in quick + slow)
    frame = Frame(start=0, end=end, regret_seconds=300, prices=Prices(0, 0))
    learned = learned_candidates(Policy(idle=idle), quick + slow, frame, 300)
    assert {p: c.idle_seconds() for p, c in learned.items()} == {"quick": 30, "slow": 240}
    assert learned_candidates(Policy(idle_timeout_seconds=60), quick, frame, 300) == {}
