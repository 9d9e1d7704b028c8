"""Rules beyond idle (issue 17, item 3) against the simulator, with the real ticker and actuator:
a project's maximum running time and its quiet hours pause a sandbox that keeps being active,
once, with a pauseImminent warning (carrying the reason) pushed to its frontends first, and the
pause explained in its history."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.connected.conftest import Stack
from tests.connected.e2b_sim_process import SimProcess, free_port, running, ticking
from tests.connected.helpers import (
    EventStream,
    enforcement,
    eventually,
    register_webhook,
    status_of,
    token,
)
from tests.connected.services import ServiceProcess
from tests.connected.test_api_keys import create_key
from tests.connected.test_policies_api import applied, put

pytestmark = pytest.mark.connected
KEY = "policy-rules-key"
# A stream stays quiet for a minute between warnings and pauses: SSE keep-alives come every 15 s,
# so a read timeout of 15 s (the tests' default client) would race them.
STREAMING = httpx.Timeout(15.0, read=60.0)


@pytest.fixture
def sim() -> Iterator[SimProcess]:
    yield from running(ticking(KEY))


@pytest.fixture
async def enforcing(stack: Stack, sim: SimProcess) -> AsyncIterator[None]:
    extra = {"ENFORCER_SCHEDULE": "1s", "ENFORCER_LEASE_SECONDS": "5"}
    async with enforcement(stack, sim.url, KEY, ("actuator", "enforcer"), extra):
        yield


def quiet_soon() -> dict[str, Any]:
    """A UTC window opening at the next whole minute at least 20 s away, for ten minutes."""
    opens = (datetime.now(UTC) + timedelta(seconds=80)).replace(second=0, microsecond=0)
    closes = opens + timedelta(minutes=10)
    return {"start": f"{opens:%H:%M}", "end": f"{closes:%H:%M}", "timezone": "UTC"}


async def test_max_running_time_and_quiet_hours_pause_an_active_sandbox_once_after_a_warning(
    client: httpx.AsyncClient, stack: Stack, sim: SimProcess, enforcing: None
) -> None:
    api = httpx.AsyncClient(base_url=sim.url, headers={"X-API-Key": KEY}, timeout=10)
    rules = {
        "maxRunningTime": {"maxLifetimeSeconds": 60, "idleTimeoutSeconds": 3600},
        "quietHours": {"quietHours": quiet_soon(), "idleTimeoutSeconds": 3600},
    }
    projects = {reason: f"rule-{uuid.uuid4().hex[:8]}" for reason in rules}
    streams: dict[str, EventStream] = {}
    async with (
        httpx.AsyncClient(timeout=STREAMING) as streaming,
        contextlib.AsyncExitStack() as opened,  # closes its streams before their client
    ):
        opened.push_async_callback(api.aclose)
        await register_webhook(api, stack, "policy-rules")
        for reason, policy in rules.items():
            r = await put(client, stack, projects[reason], policy)
            assert r.status_code == 202, r.text
            await applied(client, stack, projects[reason], r.json()["eventId"])
        sandboxes = {}
        for reason, project in projects.items():
            created = await api.post(
                "/sandboxes",
                json={"templateID": "base", "timeout": 3600, "metadata": {"projectId": project}},
            )
            assert created.status_code == 201, created.text
            sandboxes[reason] = created.json()["sandboxID"]

        async def shown(project: str) -> dict[str, Any] | None:
            r = await status_of(client, stack, project)
            return r.json() if r.status_code == 200 else None

        for reason, project in projects.items():

            async def shown_here(project: str = project) -> dict[str, Any] | None:
                return await shown(project)

            doc = await eventually(shown_here, within=20, interval=0.2)
            assert doc["pauseReason"] == reason, doc
            url = f"{stack.status_api.url}/api/projects/{project}/sandbox/stream"
            streams[reason] = await opened.enter_async_context(
                EventStream(streaming, url, token(stack, project))
            )

        async def all_paused() -> bool:
            for project in projects.values():
                # Active all along: activity does not hold a policy's forced pause.
                await client.post(
                    f"{stack.status_api.url}/api/projects/{project}/sandbox/activity",
                    headers=token(stack, project),
                    json={"source": "ui"},
                )
                doc = await shown(project)
                if doc is None or doc["status"] != "PAUSED":
                    return False
            return True

        await eventually(all_paused, within=150, interval=1.0)
        await asyncio.sleep(3)  # more ticks: nothing is paused twice
        for reason, project in projects.items():
            sse = streams[reason]
            warnings = sse.of("pauseImminent")
            assert warnings, f"{reason}: no warning before the pause"
            assert warnings[0].data["reason"] == reason
            paused = [e for e in sse.of("sandbox") if e.data["status"] in ("PAUSING", "PAUSED")]
            assert paused, reason
            assert warnings[0].at < paused[0].at, reason
            calls = (
                await api.get("/_sim/calls", params={"sandboxId": sandboxes[reason], "op": "pause"})
            ).json()
            assert [c["status"] for c in calls].count(204) == 1, (reason, calls)
            history = await client.get(
                f"{stack.status_api.url}/api/sandboxes/{sandboxes[reason]}/history",
                headers=token(stack, project),
            )
            requested = [
                e for e in history.json()["events"] if e["type"] == "sandbox.pause.requested"
            ]
            assert [e["data"]["reason"] for e in requested] == [reason], history.json()


async def test_a_paused_sandbox_is_deleted_once_after_a_warning(
    client: httpx.AsyncClient, stack: Stack, sim: SimProcess, enforcing: None
) -> None:
    project = f"delete-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=sim.url, headers={"X-API-Key": KEY}, timeout=10) as api:
        await register_webhook(api, stack, "policy-deletes")
        r = await put(client, stack, project, {"deleteAfterPausedSeconds": 60})
        assert r.status_code == 202, r.text
        await applied(client, stack, project, r.json()["eventId"])
        created = await api.post(
            "/sandboxes",
            json={"templateID": "base", "timeout": 3600, "metadata": {"projectId": project}},
        )
        assert created.status_code == 201, created.text
        sandbox = created.json()["sandboxID"]

        async def status() -> dict[str, Any] | None:
            r = await status_of(client, stack, project)
            return r.json() if r.status_code == 200 else None

        async def running() -> bool:
            doc = await status()
            return doc is not None and doc["status"] == "RUNNING"

        await eventually(running, within=20, interval=0.2)
        assert (await api.post(f"/sandboxes/{sandbox}/pause")).status_code == 204

        async def paused() -> dict[str, Any] | None:
            doc = await status()
            return doc if doc is not None and doc["status"] == "PAUSED" else None

        doc = await eventually(paused, within=20, interval=0.2)
        assert doc["deleteAt"] is not None
        url = f"{stack.status_api.url}/api/projects/{project}/sandbox/stream"
        async with (
            httpx.AsyncClient(timeout=STREAMING) as streaming,
            EventStream(streaming, url, token(stack, project)) as sse,
        ):
            (warning,) = await sse.wait_for("deleteImminent", within=10)
            assert warning.data["deleteAt"] == doc["deleteAt"]
            gone = await sse.wait_for("gone", within=90)
            assert warning.at < gone[0].at
        await asyncio.sleep(3)  # more ticks: one delete only
        calls = (await api.get("/_sim/calls", params={"sandboxId": sandbox, "op": "kill"})).json()
        assert [c["status"] for c in calls] == [204], calls
        assert (await api.get(f"/sandboxes/{sandbox}")).status_code == 404
        history = await client.get(
            f"{stack.status_api.url}/api/sandboxes/{sandbox}/history",
            headers=token(stack, admin=True),
        )
        events = history.json()["events"]
        assert [e["data"]["reason"] for e in events if e["type"] == "sandbox.delete.requested"] == [
            "deleteAfterPaused"
        ]
        killed = [e for e in events if e["type"] == "sandbox.lifecycle.killed"]
        assert any(e["data"].get("kill_reason") == "deleteAfterPaused" for e in killed), events


async def test_an_agents_busy_until_keeps_an_idle_sandbox_running_until_then_and_not_after(
    client: httpx.AsyncClient, stack: Stack, sim: SimProcess, enforcing: None
) -> None:
    """Issue 17, item 4: an agent with the project's API key (`sandboxctl api-key create`)
    says its task runs 25 s more; the sandbox, idle after 10 s, is not paused before then, and
    is paused soon after."""
    project = f"busy-{uuid.uuid4().hex[:8]}"
    agent = {"X-API-Key": create_key(stack, project)["key"]}
    async with httpx.AsyncClient(base_url=sim.url, headers={"X-API-Key": KEY}, timeout=10) as api:
        await register_webhook(api, stack, "busy-agent")
        created = await api.post(
            "/sandboxes",
            json={
                "templateID": "base",
                "timeout": 3600,
                "metadata": {"projectId": project, "idleTimeoutSeconds": "10"},
            },
        )
        assert created.status_code == 201, created.text

        async def status() -> dict[str, Any] | None:
            r = await status_of(client, stack, project)
            return r.json() if r.status_code == 200 else None

        async def running() -> dict[str, Any] | None:
            doc = await status()
            return doc if doc is not None and doc["status"] == "RUNNING" else None

        await eventually(running, within=20, interval=0.2)
        heartbeat = f"{stack.status_api.url}/api/projects/{project}/sandbox/activity"
        too_far = datetime.now(UTC) + timedelta(days=2)
        r = await client.post(
            heartbeat, headers=agent, json={"source": "agent", "busyUntil": too_far.isoformat()}
        )
        assert r.status_code == 400, r.text
        until = datetime.now(UTC) + timedelta(seconds=25)
        r = await client.post(
            heartbeat, headers=agent, json={"source": "agent", "busyUntil": until.isoformat()}
        )
        assert r.status_code == 202, r.text
        assert r.json()["recorded"] is True

        async def held() -> dict[str, Any] | None:
            doc = await status()
            return doc if doc is not None and doc["busyUntil"] is not None else None

        doc = await eventually(held, within=5)
        assert datetime.fromisoformat(doc["idleDeadlineAt"]) == until
        # Idle for 10 s many times over before `until`: still running just before it.
        while datetime.now(UTC) < until - timedelta(seconds=2):
            doc = await status()
            assert doc is not None
            assert doc["status"] == "RUNNING", doc
            await asyncio.sleep(1)

        async def paused() -> bool:
            doc = await status()
            return doc is not None and doc["status"] == "PAUSED"

        await eventually(paused, within=20, interval=0.5)
        assert datetime.now(UTC) >= until
        history = await client.get(
            f"{stack.status_api.url}/api/sandboxes/{created.json()['sandboxID']}/history",
            headers=token(stack, project),
        )
        assert "agent" in {e["source"] for e in history.json()["events"]}


async def test_quiet_hours_on_a_controlled_clock_pause_at_the_windows_start_after_a_warning(
    client: httpx.AsyncClient, stack: Stack, sim: SimProcess
) -> None:
    """The deciding processes (ticker, actuator, a status-api) run DEV_CLOCK_OFFSET_SECONDS ahead:
    a quiet-hours window 45 minutes away, in a zone half an hour off UTC and on that day only,
    opens for them within a minute. The projector computes the deadline from the run's start
    (the machine's clock), so the window is the policy's own, not a shortcut."""
    zone = ZoneInfo("Asia/Kolkata")
    opens = (datetime.now(UTC) + timedelta(minutes=45)).astimezone(zone)
    opens = opens.replace(second=0, microsecond=0)
    closes = opens + timedelta(minutes=30)
    quiet = {
        "start": f"{opens:%H:%M}",
        "end": f"{closes:%H:%M}",
        "timezone": "Asia/Kolkata",
        "days": [f"{opens:%a}".lower()],
    }
    project = f"quiet-{uuid.uuid4().hex[:8]}"
    r = await put(client, stack, project, {"quietHours": quiet, "idleTimeoutSeconds": 7200})
    assert r.status_code == 202, r.text
    await applied(client, stack, project, r.json()["eventId"])
    # Their clock starts 40 s before the window opens.
    ahead = (opens - datetime.now(UTC)).total_seconds() - 40
    clock = {"DEV_MODE": "true", "DEV_CLOCK_OFFSET_SECONDS": f"{ahead:.3f}"}
    extra = {"ENFORCER_SCHEDULE": "1s", "ENFORCER_LEASE_SECONDS": "5", **clock}
    port = free_port()
    ahead_api = ServiceProcess(
        "status-api",
        port,
        {**stack.env, "STATUS_API_PORT": str(port), **clock},
        label="status-api-ahead",
    )
    await asyncio.to_thread(ahead_api.start)
    api = httpx.AsyncClient(base_url=sim.url, headers={"X-API-Key": KEY}, timeout=10)
    try:
        async with (
            enforcement(stack, sim.url, KEY, ("actuator", "enforcer"), extra),
            httpx.AsyncClient(timeout=STREAMING) as streaming,
        ):
            await register_webhook(api, stack, "quiet-clock")
            created = await api.post(
                "/sandboxes",
                json={"templateID": "base", "timeout": 3600, "metadata": {"projectId": project}},
            )
            assert created.status_code == 201, created.text
            sandbox = created.json()["sandboxID"]

            async def shown() -> dict[str, Any] | None:
                r = await status_of(client, stack, project)
                return r.json() if r.status_code == 200 else None

            doc = await eventually(shown, within=20, interval=0.2)
            assert doc["pauseReason"] == "quietHours", doc
            assert datetime.fromisoformat(doc["idleDeadlineAt"]) == opens
            url = f"{stack.status_api.url}/api/projects/{project}/sandbox/stream"
            async with EventStream(streaming, url, token(stack, project)) as sse:
                warned = await sse.wait_for("pauseImminent", within=30)
                assert warned[0].data["reason"] == "quietHours"

                async def paused() -> bool:
                    found = await shown()
                    return found is not None and found["status"] == "PAUSED"

                await eventually(paused, within=60, interval=0.5)
                # The machine's clock is still 40-odd minutes before the window.
                assert datetime.now(UTC) < opens - timedelta(minutes=30)
                # The projector folds a batch into one change per sandbox: when the pause
                # answers fast, PAUSING and PAUSED land together and the stream shows PAUSED.
                pauses = [e for e in sse.of("sandbox") if e.data["status"] in ("PAUSING", "PAUSED")]
                assert pauses, sse.events
                assert warned[0].at < pauses[0].at
            await asyncio.sleep(3)  # more ticks: nothing is paused twice
            calls = (
                await api.get("/_sim/calls", params={"sandboxId": sandbox, "op": "pause"})
            ).json()
            assert [c["status"] for c in calls].count(204) == 1, calls
    finally:
        await api.aclose()
        ahead_api.stop()
