"""End to end through the E2B simulator: `sandboxctl webhooks register` points the simulator at
ingest, and sandboxes created and paused through the E2B API show up in status-api, carried by
the simulator's signed webhooks through ingest -> Kafka -> projector -> Redis."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sandbox_common import e2b
from tests.connected.conftest import Stack
from tests.connected.e2b_sim_process import SimProcess
from tests.connected.helpers import eventually, status_of, unique

pytestmark = pytest.mark.connected

KEY = "test-registration-key"
SANDBOXCTL = str(Path(sys.executable).parent / "sandboxctl")


@pytest.fixture(scope="module")
def sim() -> Iterator[SimProcess]:
    process = SimProcess(
        {
            "E2B_SIM_API_KEY": KEY,
            "E2B_SIM_TICK_SECONDS": "0.05",
            "E2B_SIM_WEBHOOK_RETRY_DELAY_SECONDS": "0.5",
        }
    ).start()
    yield process
    process.stop()


async def sandboxctl(stack: Stack, sim: SimProcess, *argv: str) -> tuple[int, str, str]:
    env = {
        **os.environ,
        "E2B_API_URL": sim.url,
        "E2B_API_KEY": KEY,
        "E2B_WEBHOOK_SECRET": stack.webhook_secret,
    }
    proc = await asyncio.create_subprocess_exec(
        SANDBOXCTL,
        *argv,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_registered_ingest_receives_the_simulators_lifecycle(
    stack: Stack, sim: SimProcess, client: httpx.AsyncClient
) -> None:
    hook = f"{stack.ingest.url}/api/webhooks/e2b"
    rc, out, err = await sandboxctl(stack, sim, "webhooks", "register", "--url", hook)
    assert rc == 0, err
    assert out.startswith("registered ")
    rc, out, err = await sandboxctl(stack, sim, "webhooks", "register", "--url", hook)
    assert (rc, out.split()[:2]) == (0, ["already", "registered"]), err
    assert stack.webhook_secret not in out + err

    api = {"X-API-Key": KEY}
    (reg,) = (await client.get(f"{sim.url}/events/webhooks", headers=api)).json()
    assert reg["url"] == hook
    assert sorted(reg["events"]) == sorted(e2b.SUBSCRIBED_TYPES)

    project = unique("reg")
    created = await client.post(
        f"{sim.url}/sandboxes",
        headers=api,
        json={"templateID": "base", "timeout": 300, "metadata": {"projectId": project}},
    )
    assert created.status_code == 201, created.text
    sandbox_id = created.json()["sandboxID"]

    async def shows(status: str) -> bool:
        r = await status_of(client, stack, project)
        return (
            r.status_code == 200
            and r.json()["sandboxId"] == sandbox_id
            and (r.json()["status"] == status)
        )

    await eventually(lambda: shows("RUNNING"), within=20)

    paused = await client.post(f"{sim.url}/sandboxes/{sandbox_id}/pause", headers=api)
    assert paused.status_code == 204, paused.text
    await eventually(lambda: shows("PAUSED"), within=20)

    # Every delivery was signed with the registered secret: ingest accepted them all (2xx).
    deliveries = (await client.get(f"{sim.url}/_sim/deliveries?sandboxId={sandbox_id}")).json()
    assert deliveries
    assert all(200 <= (d["status"] or 0) < 300 for d in deliveries), deliveries
