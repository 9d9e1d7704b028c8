"""What-if's pure core: demand read from facts, replayed under idle rules, and the adaptive
timeout learned from it, checked against hand-computed figures and a brute-force search."""

from __future__ import annotations

import random

import pytest

from sandbox_common.envelope import FactType
from sandbox_common.policies import Policy
from sandbox_common.whatif.actual import Savings, Seen, actual
from sandbox_common.whatif.learn import Bounds, Gaps, learn_timeout
from sandbox_common.whatif.ledger import NO_ENFORCEMENT, SEED_RULE, idle_rule, tally
from sandbox_common.whatif.replay import Frame, IdleRule, Prices, replay
from sandbox_common.whatif.trace import DEFAULT_VCPUS, Trace, Traces

FREE = Prices(vcpu_second=0.0, gib_second=0.0)
PER_VCPU = Prices(vcpu_second=1.0, gib_second=0.0)


def frame(
    start: float = 0, end: float = 10_000, regret: float = 300, prices: Prices = FREE
) -> Frame:
    return Frame(start=start, end=end, regret_seconds=regret, prices=prices)


def a_trace(uses: list[float], ended_at: float | None = 2000, project: str = "p") -> Trace:
    return Trace("sbx", project_id=project, uses=list(uses), ended_at=ended_at)


def test_facts_in_any_order_make_one_trace_per_sandbox_with_its_size_and_own_timeout() -> None:
    traces = Traces()
    traces.add(FactType.ACTIVITY, "a", None, 100.0, {})
    traces.add(
        FactType.KILLED, "a", "p1", 500.0, {"execution": {"vcpu_count": 4, "memory_mb": 2048}}
    )
    traces.add(FactType.CREATED, "a", "p1", 0.0, {"metadata": {"idleTimeoutSeconds": "600"}})
    traces.add(FactType.ACTIVITY, "a", "p1", 900.0, {})  # after the kill: no use
    traces.add(FactType.PAUSE_REQUESTED, "a", "p1", 200.0, {})  # ours: no use
    traces.add(FactType.CREATED, "b", "p2", 10.0, {"metadata": {"idleTimeoutSeconds": "x"}})
    a, b = traces.by_sandbox["a"], traces.by_sandbox["b"]
    assert a.project_id == "p1"
    assert a.moments() == [0.0, 100.0]
    assert a.ended_at == 500.0
    assert a.size == (4, 2048)
    assert a.own_idle_seconds == 600
    assert b.own_idle_seconds is None
    assert b.size == (DEFAULT_VCPUS, 512)
    assert [t.sandbox_id for t in traces.of_projects(["p2"])] == ["b"]
    assert traces.facts == 6


def test_an_idle_rule_pauses_at_the_deadline_and_each_use_resumes() -> None:
    # Uses at 0, 100, 1000; killed at 2000; 180 s timeout, no tick.
    out = replay(a_trace([1000, 0, 100]), IdleRule(180), frame(prices=PER_VCPU))
    assert (out.running_seconds, out.paused_seconds) == (460, 1540)
    assert (out.pauses, out.returns_to_paused, out.regrets) == (2, 1, 0)
    assert out.cost == 460 * DEFAULT_VCPUS
    # The return 720 s after the first pause is a regret when the window is that wide.
    assert replay(a_trace([0, 100, 1000]), IdleRule(180), frame(regret=720)).regrets == 1


def test_a_checker_on_a_tick_pauses_at_its_first_tick_after_the_deadline() -> None:
    out = replay(a_trace([0, 100, 1000]), SEED_RULE, frame())
    # Deadlines 280 and 1180 land on the ticks at 360 and 1200.
    assert (out.running_seconds, out.paused_seconds, out.pauses) == (560, 1440, 2)


def test_no_enforcement_runs_until_the_kill_or_the_end_of_the_data() -> None:
    assert replay(a_trace([0, 100]), NO_ENFORCEMENT, frame()).running_seconds == 2000
    alive = replay(a_trace([0, 100], ended_at=None), NO_ENFORCEMENT, frame(end=3000))
    assert (alive.running_seconds, alive.pauses) == (3000, 0)


def test_only_time_inside_the_frame_counts() -> None:
    out = replay(a_trace([0, 100, 1000]), IdleRule(180), frame(start=500, end=1500))
    assert (out.running_seconds, out.paused_seconds) == (180, 820)
    assert out.pauses == 1  # the pause at 280 lies before the frame


def test_a_policy_becomes_a_rule_and_the_sandboxs_own_timeout_wins() -> None:
    policy = Policy(idle_timeout_seconds=300)
    assert idle_rule(policy, None, 60) == IdleRule(300, 60)
    assert idle_rule(policy, 900, 60) == IdleRule(900, 60)
    assert idle_rule(Policy(never_pause=True, idle_timeout_seconds=300), 900, 60).timeout is None


def test_the_ledger_sums_each_scenario_per_project_and_in_total() -> None:
    traces = [
        Trace("a", "p1", [0, 100, 1000], 2000),
        Trace("b", "p1", [0], 1000),
        Trace("c", "p2", [0, 50], 500),
    ]
    scenarios = {"candidate": lambda _t: IdleRule(180), "none": lambda _t: NO_ENFORCEMENT}
    ledger = tally(traces, scenarios, frame())
    p1, p2, total = ledger.projects["p1"], ledger.projects["p2"], ledger.total
    assert p1["none"].running_seconds == 3000
    assert p2["none"].running_seconds == 500
    assert p1["candidate"].running_seconds == 460 + 180
    assert p2["candidate"].running_seconds == 230
    assert total["candidate"].running_seconds == 460 + 180 + 230
    assert total["candidate"].sandboxes == 3
    assert total["candidate"].pauses == 4


# The adaptive timeout ------------------------------------------------------------------------


def sessions(rng: random.Random, think: list[float], breaks: list[float], uses: int) -> Trace:
    """A user's sandbox: bursts of use `think` seconds apart, sessions `breaks` apart."""
    t, moments = 0.0, []
    for i in range(uses):
        moments.append(t)
        t += rng.choice(breaks) if i % 20 == 19 else rng.choice(think)
    return Trace("s", "p", moments, ended_at=t)


def brute_force(gaps: Gaps, bounds: Bounds) -> int:
    """Every whole second from low to high, each gap judged one by one."""
    every = [(g, True) for g in gaps.returned] + [(g, False) for g in gaps.open_ended]
    for t in range(bounds.low, bounds.high + 1):
        pauses = sum(1 for g, _ in every if g > t)
        regrets = sum(1 for g, back in every if back and t < g <= t + bounds.window)
        if (regrets / pauses if pauses else 0.0) <= bounds.target:
            return t
    return bounds.high


def test_a_user_who_is_never_away_longer_than_two_minutes_mid_session_gets_two_minutes() -> None:
    # Think times up to exactly 120 s, breaks of an hour or more: a timeout of 120 s never
    # pauses mid-session, and any shorter one regrets.
    rng = random.Random(7)
    trace = sessions(rng, think=[5, 30, 60, 90, 120], breaks=[3600, 7200], uses=400)
    gaps = Gaps.of([trace], until=trace.ended_at or 0)
    learned = learn_timeout(gaps, Bounds(low=30, high=1800, target=0.0, window=300))
    assert learned.seconds == 120
    assert learned.regrets == 0
    assert learned.pauses == 20  # every break: 19 ended by a return, the last by the end


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("target", [0.0, 0.05, 0.2])
def test_the_learned_timeout_is_the_shortest_that_meets_the_target(
    seed: int, target: float
) -> None:
    rng = random.Random(seed)
    think = [rng.expovariate(1 / 45) for _ in range(50)]
    breaks = [rng.uniform(200, 5000) for _ in range(10)]
    traces = [sessions(rng, think, breaks, uses=rng.randint(50, 200)) for _ in range(5)]
    gaps = Gaps.of(traces, until=max(t.ended_at or 0 for t in traces))
    bounds = Bounds(low=20, high=900, target=target, window=300)
    learned = learn_timeout(gaps, bounds)
    assert learned.seconds == brute_force(gaps, bounds)
    assert bounds.low <= learned.seconds <= bounds.high
    if learned.why.startswith("the shortest"):
        assert learned.regret_rate <= target


def test_the_bounds_hold_and_too_little_data_keeps_the_upper_one() -> None:
    rng = random.Random(1)
    trace = sessions(rng, think=[5, 30, 60, 90, 120], breaks=[3600], uses=400)
    gaps = Gaps.of([trace], until=trace.ended_at or 0)
    assert learn_timeout(gaps, Bounds(low=200, high=900, target=0.0, window=300)).seconds == 200
    # Every gap regretted whatever the timeout below 100: the target cannot be met.
    capped = learn_timeout(gaps, Bounds(low=10, high=100, target=0.0, window=300))
    assert capped.seconds == 100
    assert capped.why.startswith("no timeout")
    few = Gaps.of([Trace("x", "p", [0, 10, 20], 30)], until=30)
    scarce = learn_timeout(few, Bounds(low=10, high=600, target=0.1, window=300))
    assert scarce.seconds == 600
    assert scarce.why.startswith("too little data")


# What actually happened, and the savings ledger ------------------------------------------------


def seen(kind: FactType, at: float, **data: object) -> Seen:
    return Seen(kind.value, at, data)


def test_what_happened_is_read_from_the_lifecycle_with_e2bs_own_run_times() -> None:
    run = {"vcpu_count": 2, "memory_mb": 512}
    facts = [
        seen(FactType.KILLED, 3000, execution={**run, "execution_time": 0}),
        seen(FactType.CREATED, 0),
        seen(FactType.ACTIVITY, 100),
        seen(FactType.PAUSED, 400, execution={**run, "execution_time": 400_000}),
        seen(FactType.WAKE_REQUESTED, 500),
        seen(FactType.RESUMED, 510),
        seen(FactType.PAUSED, 1500, execution={**run, "execution_time": 990_000}),
        seen(FactType.RESUMED, 4000),  # after the kill: changes nothing
    ]
    happened, trace = actual(facts, frame(prices=PER_VCPU))
    assert (happened.running_seconds, happened.paused_seconds) == (1390, 1610)
    assert (happened.pauses, happened.regrets, happened.resume_waits) == (2, 1, [10])
    assert happened.cost == 1390 * 2  # E2B's execution_time, 2 vCPUs
    assert (trace.moments(), trace.ended_at) == ([0, 100, 510], 3000)


def test_a_sandbox_older_than_the_frame_starts_in_the_state_its_first_fact_tells() -> None:
    facts = [seen(FactType.RESUMED, 2000), seen(FactType.PAUSED, 2600)]
    happened, _ = actual(facts, frame(start=1000, end=5000, prices=PER_VCPU))
    assert (happened.running_seconds, happened.paused_seconds) == (600, 1000 + 2400)
    assert (happened.pauses, happened.resume_waits) == (1, [])
    assert happened.cost == 600 * DEFAULT_VCPUS  # no execution_time told: our clock's
    # A wake first: it was paused too.
    woken = [seen(FactType.WAKE_REQUESTED, 1990), *facts]
    happened, _ = actual(woken, frame(start=1000, end=5000))
    assert (happened.running_seconds, happened.resume_waits) == (600, [10])
    # Anything else first: it was running.
    happened, trace = actual([seen(FactType.ACTIVITY, 3000)], frame(start=1000, end=5000))
    assert (happened.running_seconds, trace.moments()) == (4000, [1000, 3000])


def test_the_savings_ledger_sets_what_happened_beside_the_seed_and_no_enforcement() -> None:
    run = {"vcpu_count": 2, "memory_mb": 512}
    ledger = Savings()
    ledger.add(
        [
            seen(FactType.CREATED, 0),
            seen(FactType.ACTIVITY, 100),
            seen(FactType.PAUSED, 400, execution={**run, "execution_time": 400_000}),
            seen(FactType.WAKE_REQUESTED, 500),
            seen(FactType.RESUMED, 510),
            seen(FactType.PAUSED, 1500, execution={**run, "execution_time": 990_000}),
            seen(FactType.KILLED, 3000),
        ],
        frame(prices=PER_VCPU),
    )
    # The seed's cron on the same uses (0, 100, 510): pauses at the ticks 360 and 720.
    assert (ledger.seed.running_seconds, ledger.seed.pauses, ledger.seed.regrets) == (570, 2, 1)
    assert ledger.seed.cost == 570 * 2
    assert ledger.unenforced.running_seconds == 3000
    assert ledger.actual.running_seconds == 1390
