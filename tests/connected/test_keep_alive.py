"""Issue 14, item 2: a heartbeat never shortens a sandbox's life. The app created its sandbox
with a 1-hour timeout; heartbeats arrive at once, before our read model knows E2B's end. The
keep-alive used to call `POST /timeout` (end = now + 10 min), cutting the app's hour to ten
minutes; it now uses E2B's extend-only refresh."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from itertools import pairwise

import httpx
import pytest

from sandbox_common import topics
from tests.connected.conftest import Stack, start_group_at_end
from tests.connected.e2b_sim_process import SimProcess, free_port, running, ticking
from tests.connected.helpers import eventually, register_webhook, status_of, token
from tests.connected.services import ServiceProcess

pytestmark = pytest.mark.connected
KEY = "keep-alive-key"
HOUR = 3600


@pytest.fixture
def sim() -> Iterator[SimProcess]:
    yield from running(ticking(KEY))


@pytest.fixture
async def actuator(stack: Stack, sim: SimProcess) -> AsyncIterator[None]:
    group = f"actuator-keepalive-{uuid.uuid4().hex[:8]}"
    await start_group_at_end(stack.infra.kafka, group, topics.COMMANDS)
    port = free_port()
    env = {
        **stack.env,
        "E2B_API_URL": sim.url,
        "E2B_API_KEY": KEY,
        "ACTUATOR_GROUP_ID": group,
        "ACTUATOR_PORT": str(port),
    }
    process = ServiceProcess("actuator", port, env, label=f"keepalive-actuator-{port}")
    await asyncio.to_thread(process.start)
    try:
        yield
    finally:
        process.stop()


def _end(sandbox: dict[str, object]) -> datetime:
    return datetime.fromisoformat(str(sandbox["endAt"]).replace("Z", "+00:00"))


async def test_heartbeats_never_move_e2bs_end_earlier(
    client: httpx.AsyncClient, stack: Stack, sim: SimProcess, actuator: None
) -> None:
    api = httpx.AsyncClient(base_url=sim.url, headers={"X-API-Key": KEY}, timeout=10)
    try:
        await register_webhook(api, stack, "keep-alive")
        project = f"keepalive-{uuid.uuid4().hex[:8]}"
        created = await api.post(
            "/sandboxes",
            json={"templateID": "base", "timeout": HOUR, "metadata": {"projectId": project}},
        )
        assert created.status_code == 201, created.text
        sandbox_id = created.json()["sandboxID"]
        first_end = _end((await api.get(f"/sandboxes/{sandbox_id}")).json())

        async def running() -> bool:
            r = await status_of(client, stack, project)
            return r.status_code == 200 and r.json()["status"] == "RUNNING"

        await eventually(running, within=20, interval=0.1)
        # At once: the read model has no end from E2B yet, so the heartbeat asks for more time.
        activity = f"{stack.status_api.url}/api/projects/{project}/sandbox/activity"
        ends = [first_end]
        for source in ("ui", "api", "ui"):
            r = await client.post(activity, headers=token(stack, project), json={"source": source})
            assert r.status_code in (200, 202), r.text
            ends.append(_end((await api.get(f"/sandboxes/{sandbox_id}")).json()))

        async def extended() -> list[dict[str, object]]:
            calls = []
            for op in ("refreshes", "timeout"):
                params = {"sandboxId": sandbox_id, "op": op}
                calls += (await api.get("/_sim/calls", params=params)).json()
            return calls if any(c["status"] == 204 for c in calls) else []

        # The keep-alive really reached E2B (else this test would prove nothing).
        calls = await eventually(extended, within=20, interval=0.1)
        await asyncio.sleep(1)  # any further command the heartbeats queued lands too
        ends.append(_end((await api.get(f"/sandboxes/{sandbox_id}")).json()))
        assert all(later >= earlier for earlier, later in pairwise(ends)), ends
        assert ends[-1] >= first_end
        # ... by the route that cannot shorten.
        assert {c["op"] for c in calls} == {"refreshes"}, calls
    finally:
        await api.aclose()
