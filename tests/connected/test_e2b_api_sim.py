"""Our own E2B client (`sandbox_common.e2b_api.client.E2BApi`) through the scenarios E2B's SDK
runs in test_e2b_sdk.py, against the simulator as a real process: create (v2 and the older
route), details with E2B's lifecycle, list across pages, timeout, refresh, pause, connect
(the older route), kill, the maximum instance length and traffic-driven auto-resume.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from sandbox_common.e2b_api.client import CallLimits, E2BApi, E2BApiError, Reply
from sandbox_common.e2b_api.listing import ListedSandbox
from tests.connected.e2b_sim_process import SimProcess, running, short_lived, ticking

pytestmark = pytest.mark.connected

KEY = "api-sim-key"
MAX_SECONDS = 2  # the short-lived simulator's maximum instance length
LIMITS = CallLimits(timeout_seconds=5.0, rate_per_second=1000.0, burst=1000)


@pytest.fixture(scope="module")
def sim() -> Iterator[SimProcess]:
    yield from running(ticking(KEY))


@pytest.fixture(scope="module")
def short_sim() -> Iterator[SimProcess]:
    yield from running(short_lived(KEY, MAX_SECONDS))


@pytest.fixture
async def api(sim: SimProcess) -> AsyncIterator[E2BApi]:
    async with E2BApi(sim.url, KEY, LIMITS) as client:
        yield client


@pytest.fixture
async def admin(sim: SimProcess) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim.url) as client:
        yield client


async def details(api: E2BApi, sandbox_id: str) -> ListedSandbox:
    found = await api.sandbox(sandbox_id)
    assert found is not None
    return found


def close_to(at: datetime | None, expected: datetime, within: float = 3.0) -> bool:
    return at is not None and abs((at - expected).total_seconds()) <= within


async def test_create_details_timeout_refresh_pause_connect_kill(api: E2BApi) -> None:
    project = f"p-{uuid.uuid4().hex[:8]}"
    sandbox_id = await api.create_sandbox_v2(
        template_id="base",
        timeout_seconds=120,
        metadata={"projectId": project},
        on_timeout="pause",
        auto_resume=True,
    )
    info = await details(api, sandbox_id)
    assert (info.state, info.metadata, info.template_id) == (
        "running",
        {"projectId": project},
        "base",
    )
    assert (info.on_timeout, info.auto_resume) == ("pause", True)
    assert info.started_at is not None
    assert info.end_at == info.started_at + timedelta(seconds=120)

    assert await api.set_timeout(sandbox_id, 30) == Reply(204)  # may shorten
    shortened = await details(api, sandbox_id)
    assert close_to(shortened.end_at, datetime.now(UTC) + timedelta(seconds=30))
    assert await api.refresh(sandbox_id, 5) == Reply(204)  # extend only: no change
    assert (await details(api, sandbox_id)).end_at == shortened.end_at
    assert await api.refresh(sandbox_id, 600) == Reply(204)
    assert close_to(
        (await details(api, sandbox_id)).end_at, datetime.now(UTC) + timedelta(minutes=10)
    )

    assert await api.pause(sandbox_id) == Reply(204)
    assert (await details(api, sandbox_id)).state == "paused"
    again = await api.pause(sandbox_id)
    assert again.status == 409
    assert "already paused" in again.message

    assert await api.connect(sandbox_id, 90) == Reply(201)  # resumed
    resumed = await details(api, sandbox_id)
    assert resumed.state == "running"
    assert close_to(resumed.end_at, datetime.now(UTC) + timedelta(seconds=90))
    assert await api.connect(sandbox_id, 10) == Reply(200)  # running: never shortened
    assert (await details(api, sandbox_id)).end_at == resumed.end_at

    assert await api.kill(sandbox_id) == Reply(204)
    assert await api.sandbox(sandbox_id) is None
    assert (await api.kill(sandbox_id)).status == 404
    assert (await api.connect(sandbox_id, 60)).status == 404


async def test_older_create_and_list_across_pages(api: E2BApi, admin: httpx.AsyncClient) -> None:
    run = f"r-{uuid.uuid4().hex[:8]}"
    created = await asyncio.gather(
        *(
            api.create_sandbox(
                template_id="base", timeout_seconds=300, metadata={"run": run}, auto_pause=True
            )
            for _ in range(101)  # more than one page of E2B's list (at most 100)
        )
    )
    before = len((await admin.get("/_sim/calls", params={"op": "list"})).json())
    listed = await api.list_sandboxes(metadata={"run": run})
    assert sorted(sb.sandbox_id for sb in listed) == sorted(created)
    assert all(sb.state == "running" and sb.on_timeout is None for sb in listed)  # list items
    calls = (await admin.get("/_sim/calls", params={"op": "list"})).json()[before:]
    assert [c["status"] for c in calls] == [200, 200]  # two pages
    assert (await details(api, created[0])).on_timeout == "pause"

    await api.pause(created[0])
    paused = await api.list_sandboxes(metadata={"run": run}, states="paused")
    assert [sb.sandbox_id for sb in paused] == [created[0]]
    await asyncio.gather(*(api.kill(sandbox_id) for sandbox_id in created))
    assert await api.list_sandboxes(metadata={"run": run}) == []


async def test_traffic_resumes_only_with_auto_resume(api: E2BApi, admin: httpx.AsyncClient) -> None:
    woken, sleeper = [
        await api.create_sandbox_v2(
            template_id="base",
            timeout_seconds=300,
            metadata={},
            on_timeout="pause",
            auto_resume=auto_resume,
        )
        for auto_resume in (True, False)
    ]
    for sandbox_id in (woken, sleeper):
        assert await api.pause(sandbox_id) == Reply(204)
    assert (await admin.post(f"/_sim/sandboxes/{woken}/traffic")).status_code == 201
    assert (await details(api, woken)).state == "running"
    assert (await admin.post(f"/_sim/sandboxes/{sleeper}/traffic")).status_code == 409
    assert (await details(api, sleeper)).state == "paused"
    assert (await details(api, sleeper)).auto_resume is False
    for sandbox_id in (woken, sleeper):
        await api.kill(sandbox_id)


async def test_maximum_instance_length(short_sim: SimProcess) -> None:
    async with E2BApi(short_sim.url, KEY, LIMITS) as api:
        with pytest.raises(E2BApiError, match="Timeout cannot be greater than 2 seconds"):
            await api.create_sandbox_v2(
                template_id="base", timeout_seconds=MAX_SECONDS + 1, metadata={}
            )
        sandbox_id = await api.create_sandbox_v2(
            template_id="base", timeout_seconds=1, metadata={}, on_timeout="pause"
        )
        start = (await details(api, sandbox_id)).started_at
        assert start is not None
        limit = start + timedelta(seconds=MAX_SECONDS)
        for extended in (
            await api.set_timeout(sandbox_id, 3600),
            await api.refresh(sandbox_id, 3600),
            await api.connect(sandbox_id, MAX_SECONDS),
        ):
            assert extended.status in (200, 204)
            assert (await details(api, sandbox_id)).end_at == limit  # capped

        await asyncio.sleep(max(0.0, (limit - datetime.now(UTC)).total_seconds()) + 0.3)
        for refused in (
            await api.set_timeout(sandbox_id, 60),
            await api.refresh(sandbox_id, 60),
            await api.connect(sandbox_id, 1),
        ):
            assert refused == Reply(400, "Max instance length exceeded")

        async with httpx.AsyncClient(base_url=short_sim.url) as admin:
            await admin.post("/_sim/tick")
        assert (await details(api, sandbox_id)).state == "paused"
        assert await api.connect(sandbox_id, MAX_SECONDS) == Reply(201)  # a new run
        assert await api.kill(sandbox_id) == Reply(204)
