"""Crashes lose nothing and double nothing; a broker outage is a 503, never a silent loss."""

from __future__ import annotations

import asyncio
import signal

import asyncpg
import httpx
import pytest

from tests.connected.conftest import Stack, service_port
from tests.connected.helpers import ago, eventually, post_webhook, status_of, token, unique, webhook
from tests.connected.services import ServiceProcess

pytestmark = pytest.mark.connected


async def test_projector_killed_mid_stream_loses_nothing_and_doubles_nothing(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    run = unique("crash")
    sandboxes = [f"{run}-{i}" for i in range(60)]
    # created -> paused -> resumed -> paused: every sandbox must end PAUSED, 4 history rows.
    steps = [("created", 0), ("paused", 10), ("resumed", 20), ("paused", 30)]
    bodies = [webhook(kind, sid, f"{sid}-p", seconds=t) for kind, t in steps for sid in sandboxes]
    sem = asyncio.Semaphore(16)
    sent = 0

    async def send(body: bytes) -> int:
        nonlocal sent
        async with sem:
            status = (await post_webhook(client, stack, body)).status_code
        sent += 1
        return status

    sending = asyncio.gather(*(send(b) for b in bodies))
    await eventually(lambda: _at_least(sent, len(bodies) // 3), within=30, interval=0.005)
    # Killed while webhooks stream in: some batches projected, some mid-flight, some not yet.
    await asyncio.to_thread(stack.projector.kill, signal.SIGKILL)
    assert set(await sending) == {200}
    stack.projector.start()

    conn = await asyncpg.connect(stack.infra.database_url)
    try:

        async def all_paused() -> bool:
            n = await conn.fetchval(
                "SELECT count(*) FROM sandboxes WHERE sandbox_id LIKE $1 AND status = 'PAUSED'",
                f"{run}-%",
            )
            return bool(n == len(sandboxes))

        await eventually(all_paused, within=60, interval=0.2)
        rows = await conn.fetch(
            "SELECT sandbox_id, count(*) AS n FROM sandbox_events WHERE sandbox_id LIKE $1"
            " GROUP BY sandbox_id",
            f"{run}-%",
        )
    finally:
        await conn.close()
    assert {r["sandbox_id"]: r["n"] for r in rows} == {sid: len(steps) for sid in sandboxes}


async def test_broker_unavailable_is_503_so_e2b_retries(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    dead = ServiceProcess(
        "ingest",
        service_port(18090),
        {
            **stack.env,
            "INGEST_PORT": str(service_port(18090)),
            "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",  # nothing listens there
            "INGEST_PUBLISH_TIMEOUT_SECONDS": "1",
        },
        label="ingest-no-broker",
    )
    dead.start(wait_ready=False)
    try:
        assert (await client.get(f"{dead.url}/readyz")).status_code == 503
        body = webhook("created", unique("sbx"), unique("proj"))
        r = await client.post(
            f"{dead.url}/api/webhooks/e2b", content=body, headers=_signed(stack, body)
        )
        assert r.status_code == 503
        assert r.headers["retry-after"]
        # Bad input still gets its 4xx while the broker is down.
        assert (await client.post(f"{dead.url}/api/webhooks/e2b", content=body)).status_code == 401
    finally:
        dead.stop()


async def _at_least(value: int, target: int) -> bool:
    return value >= target


def _signed(stack: Stack, body: bytes) -> dict[str, str]:
    from sandbox_common.e2b import signed_headers

    return signed_headers(stack.webhook_secret, body)


async def test_status_api_writes_are_503_while_reads_go_on_without_the_broker(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    project, sandbox = unique("proj"), unique("sbx")
    await post_webhook(client, stack, webhook("created", sandbox, project, seconds=ago(60)))
    await post_webhook(client, stack, webhook("paused", sandbox, project, seconds=ago(30)))
    await eventually(lambda: _paused(client, stack, project))
    api = ServiceProcess(
        "status-api",
        service_port(18091),
        {
            **stack.env,
            "STATUS_API_PORT": str(service_port(18091)),
            "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",  # nothing listens there
            "STATUS_API_PUBLISH_TIMEOUT_SECONDS": "1",
        },
        label="status-api-no-broker",
    )
    api.start()
    try:
        headers = token(stack, project)
        read = await client.get(f"{api.url}/api/projects/{project}/sandbox", headers=headers)
        assert read.status_code == 200
        for action in ("activity", "wake"):
            r = await client.post(
                f"{api.url}/api/projects/{project}/sandbox/{action}", headers=headers
            )
            assert r.status_code == 503, (action, r.text)
            assert r.headers["retry-after"] == "5"
    finally:
        api.stop()


async def _paused(client: httpx.AsyncClient, stack: Stack, project: str) -> bool:
    r = await status_of(client, stack, project)
    return r.status_code == 200 and r.json()["status"] == "PAUSED"
