"""Issue 14, items 3 and 4, against the simulator: E2B's lifetime limit is a final answer (not
retried, not dead-lettered) and the status shows the hard end; E2B's own auto-pause and
auto-resume are shown; a sandbox whose idle pauses keep being undone by traffic (auto-resume)
is recorded as flapping and its idle deadline backs off."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from sandbox_common import e2b, topics
from tests.connected.conftest import Stack
from tests.connected.e2b_sim_process import SimProcess, running, short_lived, ticking
from tests.connected.helpers import (
    ago,
    end_offsets,
    enforcement,
    eventually,
    find_record,
    post_webhook,
    status_of,
    token,
    webhook,
)

pytestmark = pytest.mark.connected
KEY = "lifecycle-key"
MAX_SECONDS = 3  # the short-lived simulator's maximum instance length
IDLE_SECONDS = 10  # the smallest per-sandbox idle timeout (readmodel.deadlines.MIN_OVERRIDE)


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# -- item 3: the maximum instance length ---------------------------------------------------


@pytest.fixture
def short_sim() -> Iterator[SimProcess]:
    yield from running(short_lived(KEY, MAX_SECONDS))


@pytest.fixture
async def limited(stack: Stack, short_sim: SimProcess) -> AsyncIterator[None]:
    async with enforcement(stack, short_sim.url, KEY, ("actuator",), {}):
        yield


async def test_at_e2bs_lifetime_limit_a_keep_alive_is_final_and_the_status_shows_the_end(
    client: httpx.AsyncClient, stack: Stack, short_sim: SimProcess, limited: None
) -> None:
    api = httpx.AsyncClient(base_url=short_sim.url, headers={"X-API-Key": KEY}, timeout=10)
    try:
        project = f"limit-{uuid.uuid4().hex[:8]}"
        created = await api.post(
            "/sandboxes",
            json={"templateID": "base", "timeout": 2, "metadata": {"projectId": project}},
        )
        assert created.status_code == 201, created.text
        sandbox_id = created.json()["sandboxID"]
        started = _time((await api.get(f"/sandboxes/{sandbox_id}")).json()["startedAt"])
        # Its created webhook, as E2B would send it (the simulator's clock is held still).
        body = webhook("created", sandbox_id, project, seconds=ago(0))
        assert (await post_webhook(client, stack, body)).status_code == 200

        async def running() -> dict[str, Any] | None:
            r = await status_of(client, stack, project)
            return r.json() if r.status_code == 200 and r.json()["status"] == "RUNNING" else None

        shown = await eventually(running, within=20, interval=0.1)
        # The hard end: E2B_MAX_LIFETIME_SECONDS (the stack's default, 24 h) after the run began.
        hard_end = _time(shown["lastActiveAt"]) + timedelta(seconds=86_400)
        assert _time(shown["maxLifetimeAt"]) == hard_end
        assert shown["lifetimeEndImminent"] is False

        await asyncio.sleep(
            max(0.0, (started + timedelta(seconds=MAX_SECONDS) - datetime.now(UTC)).total_seconds())
            + 0.5
        )
        dead_since = await end_offsets(stack.infra.kafka, topics.LIFECYCLE_DLQ)
        activity = f"{stack.status_api.url}/api/projects/{project}/sandbox/activity"
        r = await client.post(activity, headers=token(stack, project), json={"source": "ui"})
        assert r.status_code in (200, 202), r.text

        async def refused() -> list[dict[str, Any]]:
            params = {"sandboxId": sandbox_id, "op": "refreshes"}
            calls: list[dict[str, Any]] = (await api.get("/_sim/calls", params=params)).json()
            return calls if calls else []

        calls = await eventually(refused, within=20, interval=0.1)
        await asyncio.sleep(3)  # the actuator's retries would be 0.2-0.5 s apart
        calls = (
            await api.get("/_sim/calls", params={"sandboxId": sandbox_id, "op": "refreshes"})
        ).json()
        assert [c["status"] for c in calls] == [400], calls  # asked once: a final answer
        assert await find_record(stack.infra.kafka, dead_since, sandbox_id.encode()) is None
    finally:
        await api.aclose()


# -- item 4: auto-pause, auto-resume, flapping ---------------------------------------------


@pytest.fixture
def sim() -> Iterator[SimProcess]:
    yield from running(ticking(KEY))


@pytest.fixture
async def enforcing(stack: Stack, sim: SimProcess) -> AsyncIterator[None]:
    extra = {
        "ENFORCER_SCHEDULE": "1s",
        "ENFORCER_LEASE_SECONDS": "5",
        "RECONCILER_SCHEDULE": "2s",
    }
    async with enforcement(stack, sim.url, KEY, ("actuator", "enforcer"), extra):
        yield


async def test_an_auto_resume_sandbox_woken_by_traffic_after_each_idle_pause_is_flapping(
    client: httpx.AsyncClient, stack: Stack, sim: SimProcess, enforcing: None
) -> None:
    api = httpx.AsyncClient(base_url=sim.url, headers={"X-API-Key": KEY}, timeout=10)
    try:
        registered = await api.post(
            "/events/webhooks",
            json={
                "name": "flapping",
                "url": f"{stack.ingest.url}/api/webhooks/e2b",
                "enabled": True,
                "events": list(e2b.SUBSCRIBED_TYPES),
                "signatureSecret": stack.webhook_secret,
            },
        )
        assert registered.status_code == 201, registered.text
        project = f"flap-{uuid.uuid4().hex[:8]}"
        created = await api.post(
            "/v2/sandboxes",
            json={
                "templateID": "base",
                "timeout": 600,
                "autoPause": True,
                "autoResume": {"enabled": True},
                "metadata": {"projectId": project, "idleTimeoutSeconds": str(IDLE_SECONDS)},
            },
        )
        assert created.status_code == 201, created.text
        sandbox_id = created.json()["sandboxID"]

        async def shown(status: str) -> dict[str, Any] | None:
            r = await status_of(client, stack, project)
            return r.json() if r.status_code == 200 and r.json()["status"] == status else None

        async def lifecycle_read() -> dict[str, Any] | None:
            doc = await shown("RUNNING")
            return doc if doc and doc["autoPause"] is not None else None

        # The reconciler reads E2B's lifecycle of it (GET /sandboxes/{id}).
        doc = await eventually(lifecycle_read, within=30, interval=0.2)
        assert (doc["autoPause"], doc["autoResume"], doc["idleBackoff"]) == (True, True, 1)

        for _ in range(2):
            await eventually(lambda: shown("PAUSED"), within=40, interval=0.2)
            # A health probe reaches the paused sandbox: E2B wakes it (auto-resume).
            woken = await api.post(f"/_sim/sandboxes/{sandbox_id}/traffic")
            assert woken.status_code == 201, woken.text
            await eventually(lambda: shown("RUNNING"), within=20, interval=0.1)

        async def backed_off() -> dict[str, Any] | None:
            doc = await shown("RUNNING")
            return doc if doc and doc["idleBackoff"] == 2 else None

        doc = await eventually(backed_off, within=20, interval=0.2)
        # Its idle timeout doubled: the next pause comes 20 s after its last activity, not 10.
        idle_for = _time(doc["idleDeadlineAt"]) - _time(doc["lastActiveAt"])
        assert idle_for == timedelta(seconds=2 * IDLE_SECONDS)

        history = await client.get(
            f"{stack.status_api.url}/api/sandboxes/{sandbox_id}/history",
            headers=token(stack, project),
        )
        assert history.status_code == 200, history.text
        flaps = [e for e in history.json()["events"] if e["type"] == "sandbox.flapping.detected"]
        assert len(flaps) == 2, history.json()["events"]
        assert {e["source"] for e in flaps} == {"projector"}
        assert sorted(e["data"]["flaps"] for e in flaps) == [1, 2]
        metrics = await client.get(f"{stack.projector.url}/metrics")
        assert "projector_flaps_detected_total" in metrics.text
    finally:
        await api.aclose()
