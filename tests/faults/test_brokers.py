"""Broker faults of a three-node Kafka (replication factor 3, min.insync.replicas 2) under the
steady webhook load: one node killed -9 costs no acknowledged webhook and ingest's p99 is back to
normal within seconds while it is still down; with two nodes down ingest answers 503 and
acknowledges nothing, and it recovers on its own once they are back. Then every check of the
other fault scenarios (tests/faults/scenario.py). Run with FAULTS_KAFKA_BROKERS=3
(`make test-faults` runs this file so, in a session of its own)."""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass

import pytest

from tests.faults.brokers import in_sync, normal_again, partitions, windows
from tests.faults.infra import LocalInfra
from tests.faults.invariants import TopicFold
from tests.faults.progress import EndOffsets
from tests.faults.report import ScenarioFigures
from tests.faults.rig import Rig
from tests.faults.scenario import Scenario, recovered

pytestmark = [
    pytest.mark.faults,
    pytest.mark.timeout(600),
    pytest.mark.skipif(
        LocalInfra().brokers != 3, reason="needs a three-node Kafka: FAULTS_KAFKA_BROKERS=3"
    ),
]
# Longer than ingest's publish timeout (10 s: a webhook waits that long, then is answered 503),
# and than NORMAL_WITHIN: the p99 must be back while the node is still down, and stay there.
DOWN_SECONDS = float(os.environ.get("FAULTS_BROKER_DOWN_SECONDS", "20"))
# Three copies of each record, three JVMs on two cores: at the one-broker suite's 1,000/s the
# webhooks queued up without end before any fault, at 500/s the p99 was near a second on a busy
# machine; 300/s leaves room to catch up after a fault.
RATE = int(os.environ.get("FAULTS_BROKER_RATE", "300"))
# p99 counts as normal again within this factor of the p99 before the kill (and never under
# NORMAL_FLOOR seconds: a quiet machine's p99 is a few milliseconds), and must be so from
# NORMAL_WITHIN seconds after the kill on (measured: 9 to 12 s on a busy 2-core machine, of which
# about 5 s until the quorum has a new leader and the dead node is fenced, then the backlog).
NORMAL_FACTOR, NORMAL_FLOOR, NORMAL_WITHIN = 3.0, 0.5, 15.0
# Before any fault: above this, the machine does not keep up with the load and no p99 after the
# kill can be called normal or not.
STEADY_P99 = 0.5


async def test_one_broker_killed_loses_nothing_and_p99_recovers_within_seconds(
    rig: Rig, fold: TopicFold, offsets: EndOffsets, results: list[ScenarioFigures]
) -> None:
    scenario, outage = await kill_brokers(1, rig, offsets, results)
    await in_sync(rig.infra.kafka, within=120)
    figures, deliveries = scenario.figures, scenario.deliveries
    # Normal: the median of the per-second p99s before the kill, but for the load's first two
    # seconds (connections and JIT warming up) and its last one (what was in flight at the kill
    # waited for the dead node).
    before = windows(deliveries, outage.load_started + 2, outage.killed_at - 1)
    baseline = sorted(w.p99 for w in before)[len(before) // 2]
    bound = max(NORMAL_FACTOR * baseline, NORMAL_FLOOR)
    # While the victim is still down: the cluster must do without it, not wait for it.
    after = windows(deliveries, outage.killed_at, outage.restarted_at)
    normal_after = normal_again(after, bound)
    figures.extra |= {
        "p99_before_kill_s": baseline,  # the median second's
        "worst_1s_p99_after_kill_s": max(w.p99 for w in after),
        "p99_normal_again_after_kill_s": normal_after,
        "p99_bound_s": bound,
        "in_sync_again_after_restart_s": time.monotonic() - outage.restarted_at,
    }
    whole = windows(deliveries, outage.load_started, outage.load_started + figures.seconds)
    print(f"\n[faults] p99 by second of the load: {[round(w.p99, 3) for w in whole]}")
    assert baseline <= STEADY_P99, f"p99 {baseline:.2f}s before the kill: the load is too high"
    assert after[-1].start >= NORMAL_WITHIN, "the load ended too soon after the kill to tell"
    assert normal_after <= NORMAL_WITHIN, (
        f"p99 not back under {bound:.3f}s within {NORMAL_WITHIN}s of the kill: "
        f"{[(w.start, round(w.p99, 3)) for w in after]}"
    )
    await scenario.check(fold, copies_allowed=False)


async def test_two_brokers_down_ingest_answers_503_and_recovers_on_its_own(
    rig: Rig, fold: TopicFold, offsets: EndOffsets, results: list[ScenarioFigures]
) -> None:
    scenario, outage = await kill_brokers(2, rig, offsets, results)
    # An answer already on its way at the kill may arrive just after it; nothing later.
    down = (outage.killed_at + 1.0, outage.restarted_at)
    acked = [d for d in scenario.deliveries if d.acked_at and down[0] < d.acked_at < down[1]]
    answered_503 = sum(
        1
        for at, kind in scenario.load.figures.failed_times
        if kind == "503" and outage.killed_at <= at < outage.restarted_at
    )
    figures = scenario.figures
    figures.extra |= {"2xx_while_down": len(acked), "503_while_down": answered_503}
    assert acked == [], f"{len(acked)} webhooks acknowledged with one broker of three up"
    assert answered_503 > 0, f"no 503 while two brokers were down: {figures.failed}"
    # recovered(): ingest answered a new webhook 2xx and every service was ready again, with
    # none of them restarted; then the checks: every webhook acknowledged in the end, once.
    await scenario.check(fold, copies_allowed=False)


@dataclass(frozen=True)
class Outage:
    victims: list[str]
    load_started: float  # time.monotonic()
    killed_at: float
    restarted_at: float


async def kill_brokers(
    count: int, rig: Rig, offsets: EndOffsets, results: list[ScenarioFigures]
) -> tuple[Scenario, Outage]:
    """Under the load, `count` nodes killed -9 at once, the controller quorum's leader first (its
    partitions and the quorum move at once); held down DOWN_SECONDS, then started again and the
    services given time to recover on their own. The figures go to `results`."""
    infra = rig.infra
    await in_sync(infra.kafka, within=60)
    copies = {len(p["replicas"]) for p in await partitions(infra.kafka)}
    assert copies == {3}, f"replication factors {copies}: topics.sh made them for one broker"
    scenario = await Scenario.begin(rig, offsets, f"{count} of 3 brokers", RATE)
    figures = scenario.figures
    async with scenario.under_load():
        started = time.monotonic()
        await asyncio.sleep(figures.seconds / 3)
        leader = await asyncio.to_thread(infra.quorum_leader)
        victims = [leader, *(n for n in infra.kafka_nodes if n != leader)][:count]
        await asyncio.to_thread(infra.kill, *victims)
        killed_at = time.monotonic()
        await asyncio.sleep(DOWN_SECONDS)
        restarted_at = time.monotonic()
        await asyncio.to_thread(infra.start, "kafka")
        figures.down_s = time.monotonic() - killed_at
        figures.recover_s = await recovered(rig, scenario.watch, restarted_at)
    figures.killed = f"{' + '.join(victims)} of 3 (the first led the quorum)"
    results.append(scenario.summarize(restarted_at))  # in the table even if a check fails
    return scenario, Outage(victims, started, killed_at, restarted_at)
