"""status-api's wake route against the real stack: STARTING at once, a resume command queued."""

from __future__ import annotations

import contextlib

import httpx
import pytest

from sandbox_common import commands, topics
from tests.connected.conftest import Stack
from tests.connected.helpers import (
    ago,
    end_offsets,
    eventually,
    post_webhook,
    records_since,
    status_of,
    token,
    unique,
    webhook,
)

pytestmark = pytest.mark.connected


async def test_waking_a_paused_sandbox_shows_starting_and_queues_one_resume(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    project, sandbox = unique("proj"), unique("sbx")
    # In the past: our facts are stamped with our clock, and a later-stamped E2B fact wins.
    await post_webhook(client, stack, webhook("created", sandbox, project, seconds=ago(60)))
    await post_webhook(client, stack, webhook("paused", sandbox, project, seconds=ago(30)))

    async def is_(status: str) -> bool:
        r = await status_of(client, stack, project)
        return r.status_code == 200 and r.json()["status"] == status

    await eventually(lambda: is_("PAUSED"))
    before = await end_offsets(stack.infra.kafka, topics.COMMANDS)
    url = f"{stack.status_api.url}/api/projects/{project}/sandbox/wake"
    r = await client.post(url, headers=token(stack, project))
    assert r.status_code == 202
    assert r.json() == {"sandboxId": sandbox, "status": "STARTING", "pollAfterMs": 5000}
    await eventually(lambda: is_("STARTING"))
    again = await client.post(url, headers=token(stack, project))
    assert again.json()["status"] == "STARTING"  # already waking: nothing new is sent
    queued = []
    for record in await records_since(stack.infra.kafka, before):
        with contextlib.suppress(commands.CommandError):
            command = commands.decode(record.value or b"")
            if command.sandbox_id == sandbox:
                queued.append(command)
    assert [c.type for c in queued] == [commands.CommandType.RESUME]
    assert (await client.post(url, headers=token(stack, unique("proj")))).status_code == 403
    missing = f"{stack.status_api.url}/api/projects/{unique('proj')}/sandbox/wake"
    assert (await client.post(missing, headers=token(stack, admin=True))).status_code == 404
