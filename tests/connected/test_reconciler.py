"""The reconciler (issue 5) against the E2B simulator: a sandbox whose webhooks were all
dropped becomes known, one paused while its webhook was dropped shows PAUSED, and one killed
upstream (its webhook dropped too) is gone; a second pass finds nothing left to correct."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from enforcer.reconciler.loop import reconcile_once
from sandbox_common import e2b
from sandboxctl.settings import Settings
from tests.connected import redis_mode
from tests.connected.conftest import Stack
from tests.connected.e2b_sim_process import SimProcess
from tests.connected.helpers import eventually, status_of, unique

pytestmark = pytest.mark.connected
KEY = "sim-reconcile-key"


@pytest.fixture
def sim() -> Iterator[SimProcess]:
    process = SimProcess({"E2B_SIM_API_KEY": KEY, "E2B_SIM_TICK_SECONDS": "0.1"}).start()
    yield process
    process.stop()


@pytest.fixture
async def api(sim: SimProcess, stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=sim.url, headers={"X-API-Key": KEY}, timeout=10
    ) as client:
        registered = await client.post(
            "/events/webhooks",
            json={
                "name": "reconcile",
                "url": f"{stack.ingest.url}/api/webhooks/e2b",
                "enabled": True,
                "events": list(e2b.SUBSCRIBED_TYPES),
                "signatureSecret": stack.webhook_secret,
            },
        )
        assert registered.status_code == 201, registered.text
        yield client


async def _create(api: httpx.AsyncClient, project: str) -> str:
    created = await api.post(
        "/sandboxes",
        json={"templateID": "base", "timeout": 600, "metadata": {"projectId": project}},
    )
    assert created.status_code == 201, created.text
    return str(created.json()["sandboxID"])


async def test_reconciler_repairs_dropped_webhooks_and_upstream_kills(
    client: httpx.AsyncClient, stack: Stack, sim: SimProcess, api: httpx.AsyncClient
) -> None:
    paused_p, killed_p, unknown_p = unique("rp-paused"), unique("rp-killed"), unique("rp-unknown")
    paused_id = await _create(api, paused_p)
    killed_id = await _create(api, killed_p)

    async def both_running() -> bool:
        for project in (paused_p, killed_p):
            r = await status_of(client, stack, project)
            if r.status_code != 200 or r.json()["status"] != "RUNNING":
                return False
        return True

    await eventually(both_running, within=20, interval=0.2)
    # From now on E2B loses every webhook.
    assert (await api.patch("/_sim/faults", json={"dropProbability": 1.0})).status_code == 200
    unknown_id = await _create(api, unknown_p)
    assert (await api.post(f"/sandboxes/{paused_id}/pause", json={})).status_code == 204
    assert (await api.delete(f"/sandboxes/{killed_id}")).status_code == 204
    await api.post("/_sim/tick")
    assert (await status_of(client, stack, unknown_p)).status_code == 404
    assert (await status_of(client, stack, paused_p)).json()["status"] == "RUNNING"
    assert (await status_of(client, stack, killed_p)).status_code == 200

    settings = Settings(
        kafka_bootstrap_servers=stack.infra.kafka,
        database_url=stack.infra.database_url,
        redis_url=stack.infra.redis_url,
        redis_cluster=redis_mode.CLUSTER,
        e2b_api_url=sim.url,
        e2b_api_key=KEY,
        # Earlier suites leave thousands of sandboxes this simulator never heard of; each costs
        # a confirming GET, paced at the production rate (100/s) they would take minutes.
        e2b_rate_per_second=10_000.0,
        e2b_rate_burst=10_000,
    )
    result = await reconcile_once(settings)
    assert unknown_id in result.unknown
    assert paused_id in result.state_fixed
    assert killed_id in result.killed

    async def repaired() -> bool:
        unknown = await status_of(client, stack, unknown_p)
        paused = await status_of(client, stack, paused_p)
        killed = await status_of(client, stack, killed_p)
        return (
            unknown.status_code == 200
            and unknown.json()["sandboxId"] == unknown_id
            and unknown.json()["status"] == "RUNNING"
            and paused.status_code == 200
            and paused.json()["status"] == "PAUSED"
            and killed.status_code == 404
        )

    await eventually(repaired, within=20, interval=0.2)
    again = await reconcile_once(settings)
    ours = {unknown_id, paused_id, killed_id}
    # Nothing left to correct; what is new is E2B's own lifecycle of the sandbox the first pass
    # discovered (read once it is known).
    assert not [
        f for f in again.facts if f.sandbox_id in ours and f.sandbox_id not in again.lifecycle_read
    ], again.facts
    assert unknown_id in again.lifecycle_read

    async def lifecycle_known() -> bool:
        return (await status_of(client, stack, unknown_p)).json()["autoPause"] is not None

    await eventually(lifecycle_known, within=20, interval=0.2)
    third = await reconcile_once(settings)
    assert not [f for f in third.facts if f.sandbox_id in ours], third.facts
    # Only the API was asked: no call ever reached a sandbox itself.
    calls = (await api.get("/_sim/calls")).json()
    assert not [c for c in calls if c.get("op") in ("connect", "resume")], calls
