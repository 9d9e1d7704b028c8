"""`sandboxctl simulate` against a real broker (issue 18, item 4): a topic of its own holding a
known history (tests/unit/test_simulate_cmd.py's, shuffled, with an unreadable record), read by
the CLI as an operator runs it; the figures are the hand-computed ones (p1's: 700 s running
under its 300 s policy, 180 s under a 60 s candidate)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.connected.conftest import Infra
from tests.connected.helpers import unique
from tests.connected.replay_support import create_topic, delete_topic, publish
from tests.unit.test_simulate_cmd import the_topic

pytestmark = pytest.mark.connected


def sandboxctl(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from sandboxctl.cli import main; main()", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_simulate_reads_the_topic_and_prints_the_candidate_beside_the_policy_in_force(
    prepared: Infra, tmp_path: Path
) -> None:
    topic = unique("simulate")
    await create_topic(prepared.kafka, topic)
    try:
        await publish(prepared.kafka, topic, the_topic())
        policy = tmp_path / "candidate.json"
        policy.write_text(json.dumps({"idleTimeoutSeconds": 60}))
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": prepared.kafka,
            # A tick every second: pauses land on the deadlines (whole seconds here).
            "ENFORCER_SCHEDULE": "1s",
            "PRICE_VCPU_SECOND": "1",
            "PRICE_GIB_SECOND": "0",
        }
        argv = ["simulate", "--topic", topic, "--policy", str(policy), "--project", "p1"]
        done = await asyncio.to_thread(sandboxctl, *argv, "--json", env=env)
        assert done.returncode == 0, done.stderr
        assert "simulate: read 10 records" in done.stderr  # the progress lines
        document = json.loads(done.stdout)
        assert document["unreadable"] == 1
        (p1,) = document["projects"]  # --project p1: only its sandboxes
        assert p1["projectId"] == "p1"
        assert (p1["inForce"]["runningSeconds"], p1["candidate"]["runningSeconds"]) == (700, 180)
        assert (p1["candidate"]["pauses"], p1["candidate"]["regrets"]) == (3, 1)
        assert document["total"]["candidate"]["cost"] == 180  # 1 vCPU at 1 per second

        text = (await asyncio.to_thread(sandboxctl, *argv, env=env)).stdout
        assert text.splitlines()[-1] == (
            "candidate against the policy in force: pauses +50%, regrets +inf,"
            " running time -74%, cost -74%"
        )
    finally:
        await delete_topic(prepared.kafka, topic)
