"""Kill -9 each part of the system under a steady load of signed webhooks, restart it, and check
that nothing acknowledged was lost or doubled, that the read models equal the fold of the topic,
that no busy sandbox was paused, and that everything came back on its own."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from tests.faults.invariants import TopicFold
from tests.faults.progress import EndOffsets
from tests.faults.report import ScenarioFigures
from tests.faults.rig import TARGETS, Rig
from tests.faults.scenario import Scenario, recovered

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]
DOWN_SECONDS = float(os.environ.get("FAULTS_DOWN_SECONDS", "5"))


@pytest.mark.parametrize("target", TARGETS)
async def test_kill_restart_loses_nothing(
    target: str,
    rig: Rig,
    fold: TopicFold,
    offsets: EndOffsets,
    results: list[ScenarioFigures],
) -> None:
    scenario = await Scenario.begin(rig, offsets, target)
    figures = scenario.figures
    async with scenario.under_load():
        await asyncio.sleep(figures.seconds / 3)
        killed_at = time.monotonic()
        await rig.kill(target)
        await asyncio.sleep(DOWN_SECONDS)
        await rig.restart(target)
        restarted_at = time.monotonic()
        figures.down_s = restarted_at - killed_at
        figures.recover_s = await recovered(rig, scenario.watch, restarted_at)
    results.append(scenario.summarize(restarted_at))  # in the table even if a check fails
    await scenario.check(fold, copies_allowed=target == "ingest")
