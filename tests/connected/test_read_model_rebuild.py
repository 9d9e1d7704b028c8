"""Redis from PostgreSQL (issue 5): after Redis loses the read model, status-api answers 503
(retry) instead of a false 404 and the projector rebuilds it by itself; `sandboxctl
rebuild-redis` does the same on demand."""

from __future__ import annotations

import asyncio
import os
import sys

import httpx
import pytest

from tests.connected import redis_mode
from tests.connected.conftest import Stack
from tests.connected.helpers import eventually, post_webhook, status_of, unique, webhook

pytestmark = pytest.mark.connected


async def _flush(stack: Stack) -> None:
    client = redis_mode.client(stack.infra.redis_url)
    await client.flushdb()
    await client.aclose()


async def test_a_lost_read_model_is_rebuilt_from_postgresql(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    sandbox, project = unique("sbx-lost"), unique("proj-lost")
    body = webhook("created", sandbox, project)
    assert (await post_webhook(client, stack, body)).status_code == 200

    async def served() -> bool:
        r = await status_of(client, stack, project)
        return r.status_code == 200 and r.json()["sandboxId"] == sandbox

    await eventually(served)
    await _flush(stack)
    first = await status_of(client, stack, project)
    assert first.status_code in (200, 503), first.text  # never a false 404
    await eventually(served, within=30, interval=0.2)  # the projector's own check rebuilt it

    await _flush(stack)
    done = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from sandboxctl.cli import main; main()",
        "rebuild-redis",
        env={**os.environ, **stack.env},
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await done.communicate()
    assert done.returncode == 0
    assert b"Redis rebuilt from PostgreSQL" in out
    assert await served()
