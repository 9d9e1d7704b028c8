"""Pre-warming against the simulator (issue 18, item 2), with the real enforcer (ticker and its
pre-warming job) and actuator: a project expects its user back at the next whole minute; its
PAUSED sandbox is resumed ahead of that return, once, within the project's budget; the savings
ledger counts the pre-warm, and a hit once the user shows up."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from sandbox_common.readmodel import keys
from tests.connected import redis_mode
from tests.connected.conftest import Stack
from tests.connected.e2b_sim_process import SimProcess, running, ticking
from tests.connected.helpers import enforcement, eventually, register_webhook, status_of, token
from tests.connected.test_policies_api import applied, put

pytestmark = pytest.mark.connected
KEY = "prewarm-key"
IDLE = 600


@pytest.fixture
def sim() -> Iterator[SimProcess]:
    yield from running(ticking(KEY))


async def test_a_paused_sandbox_is_resumed_ahead_of_its_users_expected_return(
    client: httpx.AsyncClient, stack: Stack, sim: SimProcess
) -> None:
    project = f"prewarm-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    back = (now + timedelta(seconds=90)).replace(second=0, microsecond=0)
    lead = int((back - now).total_seconds()) - 25  # the pre-warm is due 25 s from now
    prewarm = {"times": [f"{back:%H:%M}"], "timezone": "UTC", "leadSeconds": lead}
    body = {"idleTimeoutSeconds": IDLE, "prewarm": {**prewarm, "budgetMinutesPerDay": 30}}
    r = await put(client, stack, project, body)
    assert r.status_code == 202, r.text
    await applied(client, stack, project, r.json()["eventId"])
    extra = {"ENFORCER_SCHEDULE": "1s", "ENFORCER_LEASE_SECONDS": "5", "PREWARM_SCHEDULE": "1s"}
    api = httpx.AsyncClient(base_url=sim.url, headers={"X-API-Key": KEY}, timeout=10)
    try:
        async with enforcement(stack, sim.url, KEY, ("actuator", "enforcer"), extra):
            await register_webhook(api, stack, "prewarm")
            created = await api.post(
                "/sandboxes",
                json={"templateID": "base", "timeout": 3600, "metadata": {"projectId": project}},
            )
            assert created.status_code == 201, created.text
            sandbox = created.json()["sandboxID"]

            async def status() -> str | None:
                r = await status_of(client, stack, project)
                return r.json()["status"] if r.status_code == 200 else None

            async def shows(want: str) -> bool:
                return await status() == want

            await eventually(lambda: shows("RUNNING"), within=20, interval=0.2)
            assert (await api.post(f"/sandboxes/{sandbox}/pause")).status_code == 204
            await eventually(lambda: shows("PAUSED"), within=20, interval=0.2)

            await eventually(lambda: shows("RUNNING"), within=45, interval=0.2)
            assert datetime.now(UTC) < back  # ahead of the return
            resumes = (
                await api.get("/_sim/calls", params={"sandboxId": sandbox, "op": "connect"})
            ).json()
            assert [c["status"] for c in resumes] == [201], resumes  # resumed once

            history = await client.get(
                f"{stack.status_api.url}/api/sandboxes/{sandbox}/history",
                headers=token(stack, admin=True),
            )
            wakes = [e for e in history.json()["events"] if e["type"] == "sandbox.wake.requested"]
            assert [(e["source"], e["data"].get("reason")) for e in wakes] == [
                ("enforcer", "prewarm")
            ]
            redis = redis_mode.client(stack.infra.redis_url)
            try:
                spent = await redis.get(keys.prewarm_spent(project, f"{back:%Y-%m-%d}"))
            finally:
                await redis.aclose()
            assert spent is not None
            assert int(spent) == lead + IDLE  # what it runs at most if nobody comes

            # The user comes back: the ledger counts a pre-warm, and a hit.
            r = await client.post(
                f"{stack.status_api.url}/api/projects/{project}/sandbox/activity",
                headers=token(stack, project),
                json={},
            )
            assert r.status_code in (200, 202), r.text

            async def ledger() -> dict[str, Any] | None:
                r = await client.get(
                    f"{stack.status_api.url}/api/projects/{project}/savings",
                    headers=token(stack, project),
                )
                prewarms: dict[str, Any] = r.json()["prewarms"]
                return prewarms if prewarms["hits"] == 1 else None

            prewarms = await eventually(ledger, within=20, interval=0.5)
            assert (prewarms["count"], prewarms["hitRate"], prewarms["returnsFoundRunning"]) == (
                1,
                1.0,
                1.0,
            )
            assert prewarms["runningSeconds"] > 0
    finally:
        await api.aclose()
