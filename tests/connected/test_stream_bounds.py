"""Streams stay correct and bounded: a resume the feed cannot serve whole gets the current state
(a snapshot), never a gap; browsers open them with single-use tickets, never an admin token in
the URL; they are capped per token and per process, and end when their token expires."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest
import redis.asyncio as aioredis

from sandbox_common.readmodel import Status, StatusDoc, keys
from sandbox_common.readmodel.reader import ReadModelReader
from sandbox_common.readmodel.writer import DocumentWriter
from tests.connected import redis_mode
from tests.connected.conftest import Stack, service_port
from tests.connected.helpers import EventStream, eventually, token, unique
from tests.connected.services import ServiceProcess
from tests.connected.test_status_push import created, stream_url

pytestmark = pytest.mark.connected


@pytest.fixture
async def redis(stack: Stack) -> AsyncIterator[aioredis.Redis]:
    client = redis_mode.client(stack.env["REDIS_URL"])
    try:
        yield client
    finally:
        await client.aclose()


async def noise(writer: DocumentWriter, changes: int) -> None:
    """`changes` feed entries about someone else's sandbox, written as the projector would."""
    sandbox, project = unique("sbx-noise"), unique("proj-noise")
    docs = [
        StatusDoc(
            sandbox_id=sandbox,
            project_id=project,
            status=Status.PAUSED,
            last_active_at=None,
            status_changed_at=None,
            revision=revision,
        )
        for revision in range(1, changes + 1)
    ]
    await writer.write(docs)


async def test_a_resume_past_ten_thousand_changes_ends_with_the_current_state(
    client: httpx.AsyncClient, stack: Stack, redis: aioredis.Redis
) -> None:
    project, sandbox = await created(client, stack)
    url, headers = stream_url(stack, project), token(stack, project)
    async with EventStream(client, url, headers) as sse:
        (seen,) = await sse.wait_for("sandbox")
    assert (seen.data["status"], seen.id is not None) == ("RUNNING", True)
    # While the client is away: more than 10,000 other changes, then its own sandbox pauses.
    # A feed length that trims nothing of ours: the resume point must still be in the feed.
    writer = DocumentWriter(redis, 60, 1_000_000)
    await noise(writer, 10_500)
    current = await ReadModelReader(redis).by_project(project)
    assert current is not None
    paused = msgspec.structs.replace(
        current, status=Status.PAUSED, idle_deadline_at=None, revision=current.revision + 1
    )
    await writer.write([paused])
    # status-api's follower is past all of it by then (it reads 1,000 entries per call): the
    # pause must come from the resume, not from the live feed.
    await asyncio.sleep(1.0)
    assert seen.id is not None
    async with EventStream(client, url, {**headers, "Last-Event-ID": seen.id}) as resumed:
        await resumed.wait_for("sandbox")
    # A paused client never polls: the stream alone must leave it with the right state.
    assert [e.data["status"] for e in resumed.of("sandbox")] == ["PAUSED"]
    assert resumed.of("sandbox")[0].data["sandboxId"] == sandbox
    snapshot, state = resumed.events[:2]
    assert snapshot.event == "snapshot"
    assert snapshot.data == {"projectId": project, "reason": "resume"}
    assert state.event == "sandbox"


def ticket_url(stack: Stack) -> str:
    return f"{stack.status_api.url}/api/stream-tickets"


async def test_a_browser_opens_a_stream_with_a_single_use_ticket_not_its_token(
    client: httpx.AsyncClient, stack: Stack, redis: aioredis.Redis
) -> None:
    project, _ = await created(client, stack)
    url = stream_url(stack, project)
    answer = await client.post(ticket_url(stack), headers=token(stack, project))
    assert answer.status_code == 201, answer.text
    ticket = answer.json()["ticket"]
    assert answer.json()["expiresInSeconds"] == 60
    assert 0 < await redis.ttl(keys.stream_ticket(ticket)) <= 60
    async with EventStream(client, f"{url}?ticket={ticket}", {}) as sse:
        assert sse.status_code == 200
        await sse.wait_for("sandbox")
    # Used once: a second stream (a replay of a logged URL) is refused.
    async with client.stream("GET", url, params={"ticket": ticket}) as again:
        assert again.status_code == 401
    # A ticket opens only what its token may: not another project's stream.
    other = (await client.post(ticket_url(stack), headers=token(stack, unique("proj")))).json()
    async with client.stream("GET", url, params={"ticket": other["ticket"]}) as foreign:
        assert foreign.status_code == 403
    # Minting needs the header: a token in the query string gets no ticket.
    bearer = token(stack, project)["Authorization"].removeprefix("Bearer ")
    minted = await client.post(ticket_url(stack), params={"access_token": bearer})
    assert minted.status_code == 401


async def test_an_admin_token_is_never_taken_from_a_query_string(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    fleet = f"{stack.status_api.url}/api/sandboxes/stream"
    admin = token(stack, admin=True)
    bearer = admin["Authorization"].removeprefix("Bearer ")
    async with client.stream("GET", fleet, params={"access_token": bearer}) as r:
        assert r.status_code == 401
        assert b"stream-tickets" in await r.aread()
    project, _ = await created(client, stack)
    own = stream_url(stack, project)
    async with client.stream("GET", own, params={"access_token": bearer}) as r:
        assert r.status_code == 401
    # In the header, or through a ticket, it opens the fleet stream.
    ticket = (await client.post(ticket_url(stack), headers=admin)).json()["ticket"]
    async with EventStream(client, f"{fleet}?ticket={ticket}", {}) as sse:
        assert sse.status_code == 200


async def test_a_stream_ends_with_reauthenticate_when_its_token_expires(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    project, _ = await created(client, stack)
    short = token(stack, project, ttl=3)
    ticket = (await client.post(ticket_url(stack), headers=short)).json()
    assert ticket["expiresInSeconds"] <= 3  # never outlives the token
    url = f"{stream_url(stack, project)}?ticket={ticket['ticket']}"
    async with EventStream(client, url, {}) as sse:
        (state,) = await sse.wait_for("sandbox")
        (ending,) = await sse.wait_for("reauthenticate", within=6)
        assert ending.id is None  # the client resumes from its last change
        assert ending.data["expiredAt"].endswith("Z")
        assert ending.at - state.at <= 4
        await eventually(lambda: _ended(sse), within=2)  # and the stream is over


async def _ended(sse: EventStream) -> bool:
    return sse.ended


@pytest.fixture
async def capped(stack: Stack) -> AsyncIterator[ServiceProcess]:
    api = ServiceProcess(
        "status-api",
        service_port(18092),
        {
            **stack.env,
            "STATUS_API_PORT": str(service_port(18092)),
            "STATUS_API_MAX_STREAMS": "3",
            "STATUS_API_MAX_STREAMS_PER_TOKEN": "2",
        },
        label="status-api-capped",
    )
    await asyncio.to_thread(api.start)
    try:
        yield api
    finally:
        api.stop()


async def test_streams_are_capped_per_token_and_per_process(
    client: httpx.AsyncClient, stack: Stack, capped: ServiceProcess
) -> None:
    project, _ = await created(client, stack)
    url = f"{capped.url}/api/projects/{project}/sandbox/stream"
    # Three tokens for the same project (their expiries differ, so they do).
    alice, bob, carol = (token(stack, project, ttl=600 + n) for n in range(3))
    async with contextlib.AsyncExitStack() as held:
        for headers in (alice, alice):
            sse = await held.enter_async_context(EventStream(client, url, headers))
            assert sse.status_code == 200
        async with client.stream("GET", url, headers=alice) as third:
            assert (third.status_code, third.headers["retry-after"]) == (429, "30")
        # A ticket counts against the token it was minted from.
        minted = await client.post(f"{capped.url}/api/stream-tickets", headers=alice)
        async with client.stream("GET", url, params={"ticket": minted.json()["ticket"]}) as r:
            assert r.status_code == 429
        assert (await held.enter_async_context(EventStream(client, url, bob))).status_code == 200
        async with client.stream("GET", url, headers=carol) as full:
            assert (full.status_code, full.headers["retry-after"]) == (503, "5")
    # Closed streams give their slots back.

    async def room() -> bool:
        async with client.stream("GET", url, headers=carol) as r:
            return r.status_code == 200

    assert await eventually(room)
