"""Streams stay correct and bounded: a resume the feed cannot serve whole gets the current state
(a snapshot), never a gap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest
import redis.asyncio as aioredis

from sandbox_common.readmodel import Status, StatusDoc
from sandbox_common.readmodel.reader import ReadModelReader
from sandbox_common.readmodel.writer import DocumentWriter
from tests.connected.conftest import Stack
from tests.connected.helpers import EventStream, token, unique
from tests.connected.test_status_push import created, stream_url

pytestmark = pytest.mark.connected


@pytest.fixture
async def redis(stack: Stack) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(stack.env["REDIS_URL"])
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
