"""E2B's official Python SDK (PyPI `e2b`) against the simulator, as a new user would drive it:
only its public API (`AsyncSandbox`), pointed at the simulator with E2B_API_URL / `api_url`,
assertions on the models it parses. Issue 14: the simulator serves what the SDK sends.

The SDK's lifecycle calls never touch the sandbox itself (envd): create and connect only build
the envd client, so no real sandbox is needed. Refresh (`POST /sandboxes/{id}/refreshes`) is
not in the SDK's public API; it is covered through our own client (test_e2b_api_sim.py).
Traffic reaching a sandbox is the simulator's admin endpoint (`/_sim/sandboxes/{id}/traffic`),
and webhook registration is E2B's REST API, which the SDK does not wrap.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from e2b import (
    AsyncSandbox,
    SandboxException,
    SandboxInfo,
    SandboxNotFoundException,
    SandboxQuery,
    SandboxState,
)

from sandbox_common import e2b as webhooks
from tests.connected.e2b_sim_process import Receiver, SimProcess, running, short_lived, ticking

pytestmark = pytest.mark.connected

KEY = "sdk-sim-key"
SECRET = "whsec-sdk-test"
MAX_SECONDS = 2  # the short-lived simulator's maximum instance length


@pytest.fixture(scope="module")
def sim() -> Iterator[SimProcess]:
    yield from running(ticking(KEY))


@pytest.fixture(scope="module")
def short_sim() -> Iterator[SimProcess]:
    yield from running(short_lived(KEY, MAX_SECONDS))


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver().start()
    yield server
    await server.stop()


@pytest.fixture
def sdk_env(sim: SimProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK finds the simulator the way a user points it anywhere: the environment."""
    monkeypatch.setenv("E2B_API_URL", sim.url)
    monkeypatch.setenv("E2B_API_KEY", KEY)
    monkeypatch.delenv("E2B_DEBUG", raising=False)  # debug mode would skip the API


@pytest.fixture
async def admin(sim: SimProcess, receiver: Receiver) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim.url, headers={"X-API-Key": KEY}) as client:
        receiver.clear()
        yield client


def on(process: SimProcess) -> dict[str, Any]:
    return {"api_url": process.url, "api_key": KEY}


def close_to(at: datetime, expected: datetime, within: float = 3.0) -> bool:
    return abs((at - expected).total_seconds()) <= within


async def eventually(check: Any, within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_create_info_timeout_pause_connect_kill(
    sdk_env: None, admin: httpx.AsyncClient
) -> None:
    project = f"p-{uuid.uuid4().hex[:8]}"
    sandbox = await AsyncSandbox.create(
        timeout=120,
        metadata={"projectId": project, "note": "a b&c=d"},
        lifecycle={"on_timeout": "pause", "auto_resume": True},
    )
    info: SandboxInfo = await sandbox.get_info()
    assert info.sandbox_id == sandbox.sandbox_id
    assert info.state is SandboxState.RUNNING
    assert info.metadata == {"projectId": project, "note": "a b&c=d"}
    assert info.end_at - info.started_at == timedelta(seconds=120)
    assert info.lifecycle == {"on_timeout": "pause", "auto_resume": True}
    assert (info.template_id, info.name) == ("base", "base")

    await sandbox.set_timeout(30)  # may shorten
    shortened = await sandbox.get_info()
    assert shortened.end_at < info.end_at
    assert close_to(shortened.end_at, datetime.now(UTC) + timedelta(seconds=30))

    assert await sandbox.pause() is True
    assert (await sandbox.get_info()).state is SandboxState.PAUSED
    assert await sandbox.pause() is False  # 409 already paused

    same = await AsyncSandbox.connect(sandbox.sandbox_id, timeout=90)  # resumes (201)
    resumed = await same.get_info()
    assert resumed.state is SandboxState.RUNNING
    assert resumed.started_at > info.started_at  # a new run
    assert close_to(resumed.end_at, datetime.now(UTC) + timedelta(seconds=90))
    await same.connect(timeout=10)  # running: 200, never shortened
    assert (await same.get_info()).end_at == resumed.end_at

    assert await same.kill() is True
    with pytest.raises(SandboxNotFoundException):
        await AsyncSandbox.get_info(sandbox.sandbox_id)
    assert await AsyncSandbox.kill(sandbox.sandbox_id) is False
    with pytest.raises(SandboxNotFoundException):
        await AsyncSandbox.connect(sandbox.sandbox_id)

    # What the SDK sent, as the simulator logged it.
    calls = (await admin.get("/_sim/calls", params={"sandboxId": sandbox.sandbox_id})).json()
    sent = [
        (c["method"], c["path"].replace(sandbox.sandbox_id, "{id}"), c["status"]) for c in calls
    ]
    assert sent == [
        ("GET", "/sandboxes/{id}", 200),
        ("POST", "/sandboxes/{id}/timeout", 204),
        ("GET", "/sandboxes/{id}", 200),
        ("POST", "/sandboxes/{id}/pause", 204),
        ("GET", "/sandboxes/{id}", 200),
        ("POST", "/sandboxes/{id}/pause", 409),
        ("POST", "/v2/sandboxes/{id}/connect", 201),
        ("GET", "/sandboxes/{id}", 200),
        ("POST", "/v2/sandboxes/{id}/connect", 200),
        ("GET", "/sandboxes/{id}", 200),
        ("DELETE", "/sandboxes/{id}", 204),
        ("GET", "/sandboxes/{id}", 404),
        ("DELETE", "/sandboxes/{id}", 404),
        ("POST", "/v2/sandboxes/{id}/connect", 404),
    ]
    creates = (await admin.get("/_sim/calls", params={"op": "create"})).json()
    assert {(c["method"], c["path"]) for c in creates} == {("POST", "/v2/sandboxes")}


async def test_list_pages_filters_and_orders(sdk_env: None) -> None:
    run = f"r-{uuid.uuid4().hex[:8]}"
    created = [
        (await AsyncSandbox.create(timeout=300, metadata={"run": run, "n": str(n)})).sandbox_id
        for n in range(5)
    ]
    paginator = AsyncSandbox.list(query=SandboxQuery(metadata={"run": run}), limit=2)
    pages: list[list[SandboxInfo]] = []
    while paginator.has_next:
        pages.append(await paginator.next_items())
    assert [len(page) for page in pages] == [2, 2, 1]
    listed = [sb for page in pages for sb in page]
    assert [sb.sandbox_id for sb in listed] == created[::-1]  # newest first
    assert all(sb.metadata["run"] == run and sb.lifecycle is None for sb in listed)

    oldest_first = AsyncSandbox.list(query=SandboxQuery(metadata={"run": run}), order="asc")
    assert [sb.sandbox_id for sb in await oldest_first.next_items()] == created

    await AsyncSandbox.pause(created[0])
    only_paused = AsyncSandbox.list(
        query=SandboxQuery(metadata={"run": run}, state=[SandboxState.PAUSED])
    )
    (paused,) = await only_paused.next_items()
    assert (paused.sandbox_id, paused.state) == (created[0], SandboxState.PAUSED)
    for sandbox_id in created:
        assert await AsyncSandbox.kill(sandbox_id) is True
    gone = AsyncSandbox.list(query=SandboxQuery(metadata={"run": run}))
    assert await gone.next_items() == []
    assert not gone.has_next


async def test_timeout_runs_out_into_a_pause_then_traffic_resumes_it(
    sdk_env: None, admin: httpx.AsyncClient, receiver: Receiver
) -> None:
    body = {
        "name": "sdk-test",
        "url": receiver.url,
        "events": ["sandbox.lifecycle.created", "sandbox.lifecycle.resumed"],
        "signatureSecret": SECRET,
        "enabled": True,
    }
    registration = (await admin.post("/events/webhooks", json=body)).json()
    try:
        sandbox = await AsyncSandbox.create(
            timeout=1, lifecycle={"on_timeout": "pause", "auto_resume": True}
        )
        await eventually(lambda: len(receiver.received) == 1)
        deadline = time.monotonic() + 5
        while (await sandbox.get_info()).state is not SandboxState.PAUSED:
            assert time.monotonic() < deadline, "the timeout did not pause the sandbox"
            await asyncio.sleep(0.1)

        woken = await admin.post(f"/_sim/sandboxes/{sandbox.sandbox_id}/traffic")
        assert woken.status_code == 201, woken.text
        info = await sandbox.get_info()
        assert info.state is SandboxState.RUNNING
        assert close_to(info.end_at, datetime.now(UTC) + timedelta(seconds=60))  # 60 s floor
        await eventually(lambda: len(receiver.received) == 2)
        created, resumed = (webhooks.parse_webhook(r.body) for r in receiver.received)
        assert resumed.type == "sandbox.lifecycle.resumed"
        assert resumed.sandbox_id == sandbox.sandbox_id
        assert resumed.execution_id != created.execution_id  # a new execution
        again = await admin.post(f"/_sim/sandboxes/{sandbox.sandbox_id}/traffic")
        assert again.status_code == 200  # running: nothing changes
        await sandbox.kill()
    finally:
        await admin.delete(f"/events/webhooks/{registration['id']}")


async def test_traffic_does_not_wake_a_sandbox_without_auto_resume(
    sdk_env: None, admin: httpx.AsyncClient
) -> None:
    sandbox = await AsyncSandbox.create(timeout=300, lifecycle={"on_timeout": "pause"})
    assert (await sandbox.get_info()).lifecycle == {"on_timeout": "pause", "auto_resume": False}
    await sandbox.pause()
    refused = await admin.post(f"/_sim/sandboxes/{sandbox.sandbox_id}/traffic")
    assert refused.status_code == 409
    assert "auto-resume is off" in refused.json()["message"]
    assert (await sandbox.get_info()).state is SandboxState.PAUSED
    await sandbox.kill()


async def test_maximum_instance_length(short_sim: SimProcess) -> None:
    with pytest.raises(SandboxException, match="Timeout cannot be greater than 2 seconds"):
        await AsyncSandbox.create(timeout=MAX_SECONDS + 1, **on(short_sim))
    sandbox = await AsyncSandbox.create(
        timeout=1, lifecycle={"on_timeout": "pause"}, **on(short_sim)
    )
    start = (await sandbox.get_info()).started_at
    limit = start + timedelta(seconds=MAX_SECONDS)
    await sandbox.set_timeout(3600)  # capped at the start + the maximum length
    assert (await sandbox.get_info()).end_at == limit
    await sandbox.connect(timeout=MAX_SECONDS)
    assert (await sandbox.get_info()).end_at == limit

    await asyncio.sleep(max(0.0, (limit - datetime.now(UTC)).total_seconds()) + 0.3)
    with pytest.raises(SandboxException, match="400: Max instance length exceeded"):
        await sandbox.set_timeout(60)
    with pytest.raises(SandboxException, match="400: Max instance length exceeded"):
        await sandbox.connect(timeout=1)

    async with httpx.AsyncClient(base_url=short_sim.url) as admin:
        assert (await admin.post("/_sim/tick")).json() == {"changed": 1}
    assert (await sandbox.get_info()).state is SandboxState.PAUSED  # its timeout ran out
    await sandbox.connect(timeout=MAX_SECONDS)  # a resume starts a new run
    again = await sandbox.get_info()
    assert again.state is SandboxState.RUNNING
    assert again.started_at > limit
    await sandbox.kill()
