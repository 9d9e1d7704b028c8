"""The walking skeleton end to end: signed webhook -> Kafka -> projector -> PG + Redis -> API."""

from __future__ import annotations

import json
import time

import asyncpg
import httpx
import pytest

from tests.connected.conftest import Stack
from tests.connected.helpers import (
    end_offsets,
    event_ids,
    eventually,
    post_webhook,
    records_since,
    status_of,
    token,
    unique,
    webhook,
)

pytestmark = pytest.mark.connected


async def test_signed_webhook_shows_running_within_a_second(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    project, sandbox = unique("proj"), unique("sbx")
    started = time.monotonic()
    r = await post_webhook(client, stack, webhook("created", sandbox, project))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "accepted"

    async def running() -> dict[str, object] | None:
        resp = await status_of(client, stack, project)
        return resp.json() if resp.status_code == 200 else None

    doc = await eventually(running, within=5)
    assert time.monotonic() - started < 1.0, "not visible within a second"
    assert doc["sandboxId"] == sandbox
    assert doc["projectId"] == project
    assert doc["status"] == "RUNNING"
    assert doc["pollAfterMs"] == 30000
    by_id = await client.get(
        f"{stack.status_api.url}/api/sandboxes/{sandbox}", headers=token(stack, project)
    )
    assert by_id.status_code == 200
    assert by_id.json()["sandboxId"] == sandbox


@pytest.mark.parametrize("signature", [None, "", "bogus", "sign-with-wrong-secret"])
async def test_bad_signature_is_401_and_nothing_reaches_the_topic(
    client: httpx.AsyncClient, stack: Stack, signature: str | None
) -> None:
    before = await end_offsets(stack.infra.kafka)
    event_id = unique("evt")
    body = webhook("created", unique("sbx"), unique("proj"), event_id=event_id)
    if signature == "sign-with-wrong-secret":
        from sandbox_common.e2b import compute_signature

        signature = compute_signature("not-the-secret", body)
    r = await post_webhook(client, stack, body, signature=signature)
    assert r.status_code == 401
    assert event_id not in event_ids(await records_since(stack.infra.kafka, before))


async def test_same_event_twice_is_published_and_recorded_once(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    before = await end_offsets(stack.infra.kafka)
    project, sandbox, event_id = unique("proj"), unique("sbx"), unique("evt")
    body = webhook("created", sandbox, project, event_id=event_id)
    first = await post_webhook(client, stack, body)
    second = await post_webhook(client, stack, body)
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json()["status"] == "duplicate"
    await eventually(lambda: _status_code(client, stack, project, 200))
    assert event_ids(await records_since(stack.infra.kafka, before)).count(event_id) == 1
    conn = await asyncpg.connect(stack.infra.database_url)
    try:
        rows = await conn.fetchval(
            "SELECT count(*) FROM sandbox_events WHERE event_id = $1", event_id
        )
    finally:
        await conn.close()
    assert rows == 1


async def test_shuffled_events_end_in_the_newest_state(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    project, sandbox = unique("proj"), unique("sbx")
    for kind, seconds in [("paused", 20), ("created", 0), ("resumed", 10)]:
        r = await post_webhook(client, stack, webhook(kind, sandbox, project, seconds=seconds))
        assert r.status_code == 200

    resumed_at = json.loads(webhook("resumed", sandbox, project, seconds=10))["timestamp"]

    async def settled() -> dict[str, object] | None:
        # The resume (t=10) proves activity but must not undo the later pause (t=20).
        resp = await status_of(client, stack, project)
        doc = resp.json() if resp.status_code == 200 else {}
        done = doc.get("status") == "PAUSED" and doc.get("lastActiveAt") == resumed_at
        return doc if done else None

    doc = await eventually(settled)
    assert doc["pollAfterMs"] is None


async def test_killed_sandbox_is_404_and_a_late_event_cannot_revive_it(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    project, sandbox = unique("proj"), unique("sbx")
    await post_webhook(client, stack, webhook("created", sandbox, project, seconds=0))
    await eventually(lambda: _status_code(client, stack, project, 200))
    await post_webhook(
        client, stack, webhook("killed", sandbox, project, seconds=30, kill_reason="request")
    )
    await eventually(lambda: _status_code(client, stack, project, 404))
    late = await post_webhook(client, stack, webhook("resumed", sandbox, project, seconds=10))
    assert late.status_code == 200
    # The late fact is projected (its history row appears) yet the sandbox stays gone.
    await eventually(lambda: _history_count(stack, sandbox, 3))
    assert (await status_of(client, stack, project)).status_code == 404
    by_id = await client.get(
        f"{stack.status_api.url}/api/sandboxes/{sandbox}", headers=token(stack, admin=True)
    )
    assert by_id.status_code == 404


async def test_v1_payload_is_accepted_and_projected(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    project, sandbox = unique("proj"), unique("sbx")
    r = await post_webhook(client, stack, webhook("created", sandbox, project, version="v1"))
    assert r.status_code == 200
    await eventually(lambda: _status_code(client, stack, project, 200))


async def test_access_rules_of_status_api(client: httpx.AsyncClient, stack: Stack) -> None:
    project, other, sandbox = unique("proj"), unique("proj"), unique("sbx")
    await post_webhook(client, stack, webhook("created", sandbox, project))
    await eventually(lambda: _status_code(client, stack, project, 200))
    base = stack.status_api.url
    assert (await client.get(f"{base}/api/projects/{project}/sandbox")).status_code == 401
    forbidden = await client.get(
        f"{base}/api/projects/{project}/sandbox", headers=token(stack, other)
    )
    assert forbidden.status_code == 403
    assert sandbox not in forbidden.text
    by_id = await client.get(f"{base}/api/sandboxes/{sandbox}", headers=token(stack, other))
    # By id, another project's sandbox is answered like an unknown one (issue 15, item 11).
    assert by_id.status_code == 404
    assert project not in by_id.text
    assert (
        await client.get(f"{base}/api/projects/{other}/sandbox", headers=token(stack, other))
    ).status_code == 404
    assert (
        await client.get(f"{base}/api/sandboxes/{unique('nope')}", headers=token(stack, admin=True))
    ).status_code == 404
    admin = await client.get(
        f"{base}/api/projects/{project}/sandbox", headers=token(stack, admin=True)
    )
    assert admin.status_code == 200


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"{not json", 400),
        (b'{"id": "x", "type": "sandbox.lifecycle.created"}', 400),
        (b"[]", 400),
        (b'{"id": ' + b"[" * 30_000 + b"]" * 30_000 + b"}", 400),  # hostile nesting
    ],
)
async def test_malformed_signed_bodies_are_4xx(
    client: httpx.AsyncClient, stack: Stack, body: bytes, expected: int
) -> None:
    r = await post_webhook(client, stack, body)
    assert r.status_code == expected
    assert r.json()["extra"]["reason"] == "rejected_payload"
    assert r.json()["detail"]


async def test_oversized_body_is_413(client: httpx.AsyncClient, stack: Stack) -> None:
    body = webhook("created", unique("sbx"), unique("proj"), padding="x" * 70_000)
    r = await post_webhook(client, stack, body)
    assert r.status_code == 413


async def test_unknown_event_type_is_accepted(client: httpx.AsyncClient, stack: Stack) -> None:
    r = await post_webhook(client, stack, webhook("checkpointed", unique("sbx"), unique("p")))
    assert r.status_code == 200


async def test_health_readiness_metrics_and_openapi(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    for service in (stack.ingest, stack.projector, stack.status_api):
        assert (await client.get(f"{service.url}/healthz")).status_code == 200
        assert (await client.get(f"{service.url}/readyz")).status_code == 200
    assert "ingest_webhooks_total" in (await client.get(f"{stack.ingest.url}/metrics")).text
    assert "projector_batch_seconds" in (await client.get(f"{stack.projector.url}/metrics")).text
    schema = (await client.get(f"{stack.status_api.url}/schema/openapi.json")).json()
    assert "/api/projects/{project_id}/sandbox" in schema["paths"]


async def _status_code(
    client: httpx.AsyncClient, stack: Stack, project: str, expected: int
) -> bool:
    return (await status_of(client, stack, project)).status_code == expected


async def _history_count(stack: Stack, sandbox: str, expected: int) -> bool:
    conn = await asyncpg.connect(stack.infra.database_url)
    try:
        count = await conn.fetchval(
            "SELECT count(*) FROM sandbox_events WHERE sandbox_id = $1", sandbox
        )
    finally:
        await conn.close()
    return bool(count == expected)
