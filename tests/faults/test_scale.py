"""Many processes of each service at once, as a cluster deployment runs them: 2 ingest, 3
projectors, 2 actuators, 2 tickers (enforcer) and 2 status-api on a three-node Kafka (replication
factor 3, min.insync.replicas 2) and a three-master Redis Cluster. Under the steady webhook load
one projector and one actuator are killed -9 and left dead: their groups rebalance and the others
take over their partitions. Then every check of the fault scenarios (tests/faults/scenario.py:
every acknowledged webhook on the topic and folded once, the stores equal the fold, busy
sandboxes never paused, idle ones paused exactly once, here a fleet of them whose pauses were in
flight when the actuator died), and SSE clients on each status-api process were shown every
change. Run with FAULTS_KAFKA_BROKERS=3 REDIS_CLUSTER=true (`make test-faults` runs this file so,
in a session of its own)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime

import httpx
import pytest

from tests.connected.helpers import EventStream, eventually
from tests.faults.brokers import in_sync, partitions
from tests.faults.conftest import ACTIVE_SANDBOXES
from tests.faults.infra import LocalInfra
from tests.faults.invariants import TopicFold
from tests.faults.progress import EndOffsets
from tests.faults.report import ScenarioFigures
from tests.faults.rig import Rig, open_rig, replica_of
from tests.faults.scenario import Scenario
from tests.faults.streams import differences, in_feed, shown_in_stream

_infra = LocalInfra()
pytestmark = [
    pytest.mark.faults,
    pytest.mark.timeout(900),
    pytest.mark.skipif(
        _infra.brokers != 3 or not _infra.redis_cluster,
        reason="needs a three-node Kafka and a Redis Cluster: "
        "FAULTS_KAFKA_BROKERS=3 REDIS_CLUSTER=true",
    ),
]
REPLICAS = {"ingest": 2, "projector": 3, "actuator": 2, "enforcer": 2, "status-api": 2}
# Eleven service processes, three brokers and three Redis masters on the CI machine's two cores:
# the broker scenarios' rate.
RATE = int(os.environ.get("FAULTS_SCALE_RATE", "300"))
# Idle sandboxes the actuators pause during the load. Created one every FLEET_GAP_S seconds, so
# their pauses are issued over as long, and each takes PAUSE_LATENCY_MS at E2B: many are under
# way at once.
IDLE_FLEET, FLEET_GAP_S, FLEET_IDLE_SECONDS = 40, 0.2, 20
PAUSE_LATENCY_MS = 5000
# The actuator killed is the first with this many pauses under way: they are redone by the other.
IN_FLIGHT_AT_KILL = 5


@pytest.fixture(scope="module")
async def fleet(infra: LocalInfra) -> AsyncIterator[Rig]:
    async with open_rig(infra, ACTIVE_SANDBOXES, REPLICAS) as rig:
        yield rig


@contextlib.asynccontextmanager
async def fleet_streams(rig: Rig) -> AsyncIterator[list[EventStream]]:
    """An admin's fleet stream on each status-api process."""
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None)) as client:
        streams = [
            EventStream(client, f"{url}/api/sandboxes/stream", rig.admin_token())
            for url in rig.urls("status-api")
        ]
        async with contextlib.AsyncExitStack() as stack:
            for stream in streams:
                await stack.enter_async_context(stream)
                assert stream.status_code == 200, stream.status_code
            yield streams


async def test_many_replicas_lose_nothing_when_a_projector_and_an_actuator_die(
    fleet: Rig, fold: TopicFold, offsets: EndOffsets, results: list[ScenarioFigures]
) -> None:
    rig = fleet
    await in_sync(rig.infra.kafka, within=60)
    copies = {len(p["replicas"]) for p in await partitions(rig.infra.kafka)}
    assert copies == {3}, f"replication factors {copies}: topics.sh made them for one broker"
    async with rig.sim_api() as api:
        r = await api.patch("/_sim/faults", json={"pauseLatencyMs": PAUSE_LATENCY_MS})
        assert r.status_code == 200, r.text

    async with fleet_streams(rig) as streams:
        scenario = await Scenario.begin(rig, offsets, "scale", RATE)
        idle_fleet = {}
        for i in range(IDLE_FLEET):
            project = f"fleet-{uuid.uuid4().hex[:6]}-{i}"
            idle_fleet[project] = await rig.create_sandbox(project, FLEET_IDLE_SECONDS)
            await asyncio.sleep(FLEET_GAP_S)
        scenario.idle |= idle_fleet
        figures = scenario.figures
        async with scenario.under_load():
            await asyncio.sleep(figures.seconds / 3)
            await rig.kill("projector-3")
            projector_killed_at = time.monotonic()
            victim, in_flight = await busy_actuator(rig, at_least=IN_FLIGHT_AT_KILL, within=60)
            await rig.kill(victim)
            actuator_killed_at = time.monotonic()
            # Nothing is restarted: the groups' other members must take the partitions over.
        figures.killed = f"projector-3 of 3 and {victim} of 2 (not restarted)"
        figures.restarted = False
        figures.extra["commands_in_flight_at_actuator_kill"] = in_flight
        takeover = scenario.watch.every_partition_moved(projector_killed_at)
        figures.extra["projector_partitions_all_moving_after_kill_s"] = (
            math.inf if takeover is None else takeover
        )
        # The lag grows until the dead member's partitions have a new owner: caught up counts
        # from the kill, past the takeover.
        results.append(scenario.summarize(projector_killed_at + (takeover or 0.0)))
        figures.caught_up_s += takeover or 0.0
        await scenario.check(fold, copies_allowed=False)
        calls = await pause_calls(rig, idle_fleet.values())
        last_204 = max(at for at, status in calls if status == 204)
        figures.extra["fleet_paused_after_actuator_kill_s"] = last_204 - actuator_killed_at
        # A pause the dead actuator had in flight is redone by the other one: E2B answers 409
        # (already paused) or 204 (the first never arrived); check() saw one 204 per sandbox.
        figures.extra["fleet_pause_calls"] = len(calls)
        figures.extra["fleet_pause_calls_409"] = sum(1 for _, status in calls if status == 409)

        # The load's sandboxes and the fleet were all born after the streams opened.
        sandboxes = {sid for sid in fold.states if sid.startswith("load-")} | set(
            idle_fleet.values()
        )
        want = await in_feed(rig.infra.redis_url, sandboxes)
        assert sum(map(len, want.values())) >= len(scenario.deliveries) // 2, "a thin feed"

        async def all_shown() -> bool:
            # The feed is read again each time: the system goes on writing after the load (the
            # reconciler's pass, on its */5 schedule, reads E2B's lifecycle of the fleet and
            # kills the load's sandboxes, which E2B never had), and the clients must be shown
            # that too.
            nonlocal want
            want = await in_feed(rig.infra.redis_url, sandboxes)
            return all(not differences(want, shown_in_stream(s.events), sandboxes) for s in streams)

        with contextlib.suppress(AssertionError):
            await eventually(all_shown, within=30, interval=0.5)
        for stream, url in zip(streams, rig.urls("status-api"), strict=True):
            assert not stream.ended, f"{url}: the stream ended"
            assert not stream.of("snapshot"), f"{url}: a snapshot instead of the changes"
            problems = differences(want, shown_in_stream(stream.events), sandboxes)
            assert problems == [], f"{url} did not show every change: {problems}"
        figures.extra["sse_changes_shown_per_client"] = sum(map(len, want.values()))
        figures.checked.append("SSE clients on both status-api processes shown every change")
    print("\n" + figures.line())


async def busy_actuator(rig: Rig, at_least: int, within: float) -> tuple[str, int]:
    """The actuator process that first has `at_least` commands in flight (its metric), and how
    many it has then."""
    names = [n for n in rig.services if replica_of(n) == "actuator"]

    async def in_flight(name: str) -> int:
        r = await rig.http.get(f"{rig.url(name)}/metrics", timeout=2.0)
        for line in r.text.splitlines():
            if line.startswith("actuator_commands_in_flight "):
                return int(float(line.split()[1]))
        return 0

    async def busy() -> tuple[str, int] | None:
        counts = await asyncio.gather(*(in_flight(n) for n in names))
        name, count = max(zip(names, counts, strict=True), key=lambda nc: nc[1])
        return (name, count) if count >= at_least else None

    found: tuple[str, int] = await eventually(busy, within=within, interval=0.1)
    return found


async def pause_calls(rig: Rig, sandboxes: Iterable[str]) -> list[tuple[float, int]]:
    """(time.monotonic() it was answered, status) of each pause call of these sandboxes."""
    wanted = set(sandboxes)
    async with rig.sim_api() as api:
        calls = (await api.get("/_sim/calls", params={"op": "pause"})).json()
    now_wall, now = datetime.now(UTC), time.monotonic()
    return [
        (now - (now_wall - datetime.fromisoformat(c["at"])).total_seconds(), c["status"])
        for c in calls
        if c["sandboxId"] in wanted
    ]
