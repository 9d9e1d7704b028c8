"""Smaller promises of the contract: seed log lines, no secrets in logs, timeout sync, and the
read model's revision guard."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest

from projector.adapters.redis import RedisReadModel
from projector.domain import SandboxState
from projector.handlers import Projected
from sandbox_common.readmodel import DeadlineRule, Layout, Status, decode_doc, keys
from sandbox_common.readmodel.writer import DocumentWriter
from tests.connected import redis_mode
from tests.connected.conftest import Stack
from tests.connected.helpers import ago, eventually, post_webhook, status_of, unique, webhook

pytestmark = pytest.mark.connected


async def test_seed_log_lines_are_written_and_secrets_are_not(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    def lines() -> list[dict[str, object]]:
        text = stack.ingest.log_path.read_text(errors="replace")
        # split("\n"), not splitlines(): a JSON line may hold U+2028 and the like unescaped
        # (valid JSON; log shippers split on newlines only).
        return [json.loads(line) for line in text.split("\n") if line.startswith("{")]

    def invalid_signatures() -> int:
        return [e.get("message") for e in lines()].count("[E2B Webhook] Invalid signature")

    sandbox = unique("sbx")
    rejected_before = invalid_signatures()
    await post_webhook(client, stack, webhook("created", sandbox, unique("proj")))
    # From an address of its own: ingest writes this line once per window per address.
    own = httpx.AsyncHTTPTransport(local_address=f"127.0.{uuid.uuid4().int % 250 + 1}.9")
    async with httpx.AsyncClient(transport=own, timeout=15.0) as alone:
        await post_webhook(alone, stack, webhook("paused", sandbox, None), signature="forged")

    async def both_logged() -> bool:
        messages = [str(entry.get("message")) for entry in lines()]
        return (
            f"[E2B Webhook] Received event: sandbox.lifecycle.created for sandbox {sandbox}"
            in messages
            and invalid_signatures() == rejected_before + 1
        )

    await eventually(both_logged)
    received = next(e for e in lines() if e.get("sandbox_id") == sandbox)
    assert received["event_type"] == "sandbox.lifecycle.created"
    assert received["outcome"] == "accepted"
    for service in (stack.ingest, stack.projector, stack.status_api):
        text = service.log_path.read_text(errors="replace")
        assert stack.webhook_secret not in text
        assert stack.jwt_secret not in text


async def test_updated_event_syncs_the_timeout(client: httpx.AsyncClient, stack: Stack) -> None:
    project, sandbox = unique("proj"), unique("sbx")
    end = "2031-01-02T03:04:05Z"
    await post_webhook(client, stack, webhook("created", sandbox, project, seconds=0))
    await post_webhook(
        client, stack, webhook("updated", sandbox, project, seconds=5, set_timeout=end)
    )

    async def synced() -> bool:
        r = await status_of(client, stack, project)
        return r.status_code == 200 and r.json()["timeoutAt"] == end

    await eventually(synced)


async def test_read_model_never_goes_back_to_an_older_revision(stack: Stack) -> None:
    client = redis_mode.client(stack.infra.redis_url)
    model = RedisReadModel(
        DocumentWriter(client, tombstone_ttl_seconds=60, change_feed_max_length=1000),
        DeadlineRule(180),
    )
    sandbox = unique("sbx")
    now = datetime.now(UTC)
    newer = SandboxState(
        sandbox_id=sandbox, status=Status.PAUSED, project_id="p", last_event_at=now
    )
    older = SandboxState(
        sandbox_id=sandbox, status=Status.RUNNING, project_id="p", last_event_at=now
    )
    try:
        await model.publish([Projected(newer, 5)])
        await model.publish([Projected(older, 4)])  # a late write, e.g. a replayed batch
        raw = await client.hget(Layout().doc(sandbox), keys.DOC_FIELD)
        assert raw is not None
        doc = decode_doc(raw)
        assert (doc.status, doc.revision) == (Status.PAUSED, 5)
    finally:
        await client.aclose()


async def test_an_empty_project_id_never_overwrites_the_document(stack: Stack) -> None:
    """Found by the hostile-input suite: metadata `projectId: ""` made the pointer SET land on
    the document's own key (a hash), and every later write of it failed with WRONGTYPE, so the
    projector retried that batch for ever."""
    client = redis_mode.client(stack.infra.redis_url)
    model = RedisReadModel(
        DocumentWriter(client, tombstone_ttl_seconds=60, change_feed_max_length=1000),
        DeadlineRule(180),
    )
    sandbox = unique("sbx")
    now = datetime.now(UTC)
    try:
        for revision, status in ((1, Status.RUNNING), (2, Status.PAUSED)):
            state = SandboxState(
                sandbox_id=sandbox, status=status, project_id="", last_event_at=now
            )
            await model.publish([Projected(state, revision)])
        raw = await client.hget(Layout().doc(sandbox), keys.DOC_FIELD)
        assert raw is not None
        assert decode_doc(raw).status is Status.PAUSED
    finally:
        await client.aclose()


async def test_idle_deadline_index_follows_the_running_state(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    project, sandbox = unique("proj"), unique("sbx")
    created = json.loads(webhook("created", sandbox, project, seconds=0))
    redis_client = redis_mode.client(stack.infra.redis_url)
    try:
        await post_webhook(client, stack, webhook("created", sandbox, project, seconds=0))

        async def indexed() -> float | None:
            return await redis_client.zscore(
                Layout().idle_deadlines(Layout().shard(sandbox)), sandbox
            )

        score = await eventually(indexed)
        active = datetime.fromisoformat(created["timestamp"].replace("Z", "+00:00"))
        assert score == pytest.approx(active.timestamp() + 180, abs=0.01)  # default idle 180 s
        await post_webhook(client, stack, webhook("paused", sandbox, project, seconds=5))

        async def dropped() -> bool:
            index = Layout().idle_deadlines(Layout().shard(sandbox))
            return await redis_client.zscore(index, sandbox) is None

        await eventually(dropped)
    finally:
        await redis_client.aclose()


async def test_a_row_changed_behind_the_projectors_back_is_read_again(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    """The projector keeps states in memory between batches; another writer (a rebalance
    overlap, a replay's swap) moving a row's revision must make it read the row again."""
    project, sandbox = unique("proj"), unique("sbx")
    await post_webhook(client, stack, webhook("created", sandbox, project, seconds=ago(30)))

    async def is_(status: str) -> bool:
        r = await status_of(client, stack, project)
        return r.status_code == 200 and r.json()["status"] == status

    await eventually(lambda: is_("RUNNING"))
    conn = await asyncpg.connect(stack.infra.database_url)
    try:
        await conn.execute(
            "UPDATE sandboxes SET revision = revision + 1000 WHERE sandbox_id = $1", sandbox
        )
        before = await conn.fetchval(
            "SELECT revision FROM sandboxes WHERE sandbox_id = $1", sandbox
        )
        await post_webhook(client, stack, webhook("paused", sandbox, project, seconds=ago(10)))
        await eventually(lambda: is_("PAUSED"), within=30)
        row = await conn.fetchrow(
            "SELECT status, revision FROM sandboxes WHERE sandbox_id = $1", sandbox
        )
    finally:
        await conn.close()
    assert row is not None
    assert (row["status"], row["revision"]) == ("PAUSED", before + 1)
