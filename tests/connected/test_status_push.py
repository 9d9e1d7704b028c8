"""status-api for frontends against the real stack: server-sent events, 304s, pause warnings,
history and fleet."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.connected.conftest import Stack
from tests.connected.helpers import (
    EventStream,
    ago,
    eventually,
    post_webhook,
    status_of,
    token,
    unique,
    webhook,
)

pytestmark = pytest.mark.connected


async def created(client: httpx.AsyncClient, stack: Stack, **metadata: str) -> tuple[str, str]:
    project, sandbox = unique("proj"), unique("sbx")
    body = webhook("created", sandbox, project, seconds=ago(0), metadata=metadata or None)
    assert (await post_webhook(client, stack, body)).status_code == 200

    async def visible() -> bool:
        return (await status_of(client, stack, project)).status_code == 200

    await eventually(visible)
    return project, sandbox


def stream_url(stack: Stack, project: str) -> str:
    return f"{stack.status_api.url}/api/projects/{project}/sandbox/stream"


async def test_a_pause_webhook_reaches_an_sse_client_within_a_second(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    project, sandbox = await created(client, stack)
    async with EventStream(client, stream_url(stack, project), token(stack, project)) as sse:
        assert sse.status_code == 200
        assert sse.headers is not None
        assert sse.headers["content-type"].startswith("text/event-stream")
        first = await sse.wait_for("sandbox")
        assert first[0].data["status"] == "RUNNING"
        assert first[0].data["sandboxId"] == sandbox
        body = webhook("paused", sandbox, project, seconds=ago(-1))
        r = await post_webhook(client, stack, body)
        acknowledged = time.monotonic()
        assert r.status_code == 200
        _, event = await sse.wait_for("sandbox", count=2)
        assert event.data["status"] == "PAUSED"
        latency = event.at - acknowledged
        assert latency <= 1.0, f"PAUSED reached the client {latency:.3f} s after the 2xx"
        assert event.data["pollAfterMs"] is None
        assert event.id is not None


async def test_a_client_resuming_with_last_event_id_gets_what_it_missed(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    project, sandbox = await created(client, stack)
    url, headers = stream_url(stack, project), token(stack, project)
    async with EventStream(client, url, headers) as sse:
        (snapshot,) = await sse.wait_for("sandbox")
    assert snapshot.id is not None
    # While disconnected: paused, then killed. Each must reach the read model before the next is
    # sent: two facts folded in one batch make one revision (KILLED), and one feed entry.
    await post_webhook(client, stack, webhook("paused", sandbox, project, seconds=ago(-1)))

    async def paused() -> bool:
        answer = await status_of(client, stack, project)
        return answer.status_code == 200 and answer.json()["status"] == "PAUSED"

    await eventually(paused)
    await post_webhook(client, stack, webhook("killed", sandbox, project, seconds=ago(-2)))

    async def gone() -> bool:
        return (await status_of(client, stack, project)).status_code == 404

    await eventually(gone)
    async with EventStream(client, url, {**headers, "Last-Event-ID": snapshot.id}) as resumed:
        await resumed.wait_for("gone")
    kinds = [(e.event, e.data.get("status")) for e in resumed.events]
    assert kinds == [("sandbox", "PAUSED"), ("gone", None)]
    # A fresh client (no Last-Event-ID) is told at once that there is no live sandbox.
    async with EventStream(client, url, headers) as fresh:
        (none,) = await fresh.wait_for("gone")
        assert none.data == {"projectId": project, "sandboxId": sandbox}


async def test_the_stream_takes_a_query_token_and_refuses_other_projects(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    project, _ = await created(client, stack)
    bearer = token(stack, project)["Authorization"].removeprefix("Bearer ")
    async with EventStream(client, f"{stream_url(stack, project)}?access_token={bearer}", {}) as s:
        assert s.status_code == 200
        await s.wait_for("sandbox")
    other = token(stack, unique("proj"))
    async with client.stream("GET", stream_url(stack, project), headers=other) as r:
        assert r.status_code == 403


async def test_if_none_match_gives_304_until_the_sandbox_changes(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    project, sandbox = await created(client, stack)
    url = f"{stack.status_api.url}/api/projects/{project}/sandbox"
    headers = token(stack, project)
    first = await client.get(url, headers=headers)
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "private, max-age=30"  # RUNNING: pollAfterMs 30000
    again = await client.get(url, headers={**headers, "If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == etag
    by_id = f"{stack.status_api.url}/api/sandboxes/{sandbox}"
    assert (await client.get(by_id, headers={**headers, "If-None-Match": etag})).status_code == 304
    # The Litestar route (taken for cross-origin requests) agrees with the fast lane.
    slow = await client.get(url, headers={**headers, "Origin": "http://elsewhere.example"})
    assert (slow.status_code, slow.headers["etag"], slow.json()) == (200, etag, first.json())
    await post_webhook(client, stack, webhook("paused", sandbox, project, seconds=ago(-1)))

    async def changed() -> httpx.Response | None:
        r = await client.get(url, headers={**headers, "If-None-Match": etag})
        return r if r.status_code == 200 else None

    paused = await eventually(changed)
    assert paused.json()["status"] == "PAUSED"
    assert paused.headers["cache-control"] == "private, no-cache"
    assert paused.headers["etag"] != etag


async def test_the_pause_warning_goes_out_once_per_deadline_and_again_after_activity(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    # A 12 s idle timeout: the deadline is inside the 30 s warning window from the start.
    project, sandbox = await created(client, stack, idleTimeoutSeconds="12")
    async with EventStream(client, stream_url(stack, project), token(stack, project)) as sse:
        first = await sse.wait_for("pauseImminent")
        assert first[0].data["sandboxId"] == sandbox
        assert 0 <= first[0].data["secondsLeft"] <= 12
        status = (await status_of(client, stack, project)).json()
        assert status["pauseImminent"] is True
        await asyncio.sleep(2.5)  # the warner runs every second: it must not repeat itself
        assert len(sse.of("pauseImminent")) == 1
        activity = f"{stack.status_api.url}/api/projects/{project}/sandbox/activity"
        r = await client.post(activity, headers=token(stack, project), json={"source": "ui"})
        assert r.json()["recorded"] is True
        second, third = (await sse.wait_for("pauseImminent", count=2, within=8))[:2]
        assert third.data["idleDeadlineAt"] > second.data["idleDeadlineAt"]
        await asyncio.sleep(2.5)
        assert len(sse.of("pauseImminent")) == 2


async def test_history_explains_a_pause_and_the_fleet_lists_with_counts(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    project, sandbox = await created(client, stack)
    activity = f"{stack.status_api.url}/api/projects/{project}/sandbox/activity"
    await client.post(activity, headers=token(stack, project), json={"source": "api"})
    await post_webhook(client, stack, webhook("paused", sandbox, project, seconds=ago(-5)))
    history_url = f"{stack.status_api.url}/api/sandboxes/{sandbox}/history"

    async def three_events() -> dict[str, object] | None:
        r = await client.get(history_url, headers=token(stack, project))
        return r.json() if r.status_code == 200 and len(r.json()["events"]) == 3 else None

    page = await eventually(three_events)
    assert [e["type"] for e in page["events"]] == [
        "sandbox.lifecycle.paused",
        "sandbox.activity.recorded",
        "sandbox.lifecycle.created",
    ]
    assert page["lastActivity"]["source"] == "api"
    assert page["nextCursor"] is None
    one = await client.get(history_url, params={"limit": 1}, headers=token(stack, project))
    older = await client.get(
        history_url,
        params={"limit": 2, "cursor": one.json()["nextCursor"]},
        headers=token(stack, project),
    )
    assert [e["eventId"] for e in one.json()["events"] + older.json()["events"]] == [
        e["eventId"] for e in page["events"]
    ]
    bad = await client.get(history_url, params={"cursor": "!!"}, headers=token(stack, project))
    assert bad.status_code == 400

    fleet = f"{stack.status_api.url}/api/sandboxes"
    admin = token(stack, admin=True)
    listed = (await client.get(fleet, params={"projectId": project}, headers=admin)).json()
    assert [s["sandboxId"] for s in listed["sandboxes"]] == [sandbox]
    assert listed["sandboxes"][0]["lastActivitySource"] == "api"
    assert listed["counts"] == {"PAUSED": 1}
    paused = (
        await client.get(fleet, params={"status": "PAUSED", "limit": 1}, headers=admin)
    ).json()
    assert all(s["status"] == "PAUSED" for s in paused["sandboxes"])
    assert (await client.get(fleet, headers=token(stack, project))).status_code == 403
