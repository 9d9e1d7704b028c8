"""The adaptive idle rule end to end (issue 18, item 1): a project's history reaches PostgreSQL
through ingest and the projector, the learner (one run, as the ticker runs it) learns the
timeout its users' habits call for and publishes it as an amendment of the project's policy,
and the projector applies it to the project's live deadlines."""

from __future__ import annotations

import random
from typing import Any

import asyncpg
import httpx
import pytest

from enforcer.learner.loop import learn_once
from enforcer.settings import TickerSettings
from sandbox_common.settings import load
from tests.connected.conftest import Stack
from tests.connected.helpers import ago, eventually, post_webhook, token, unique, webhook
from tests.connected.test_policies_api import applied, put
from tests.connected.test_policies_applied import running, timeouts_become

pytestmark = pytest.mark.connected

BOUNDS = {"mode": "adaptive", "minSeconds": 30, "maxSeconds": 1800, "targetRegret": 0}


async def history(client: httpx.AsyncClient, stack: Stack, project: str) -> int:
    """Four users' sandboxes over the last three days, each used in sessions (uses 10 to 90 s
    apart, an hour between sessions), then killed. Returns the longest gap within a session:
    the shortest timeout that never pauses a session midway."""
    rng = random.Random(11)
    longest, sandboxes = 0, []
    for user in range(4):
        sandbox = unique("hist")
        sandboxes.append(sandbox)
        at = ago(3 * 86_400 - user * 3600)
        sent = [webhook("created", sandbox, project, seconds=at)]
        for k in range(12):
            gap = 3600 if k % 4 == 3 else rng.choice([10, 45, 90])
            longest = max(longest, gap) if gap < 3600 else longest
            at += gap
            sent.append(webhook("resumed", sandbox, project, seconds=at))
        sent.append(webhook("killed", sandbox, project, seconds=at + 60))
        for body in sent:
            r = await post_webhook(client, stack, body)
            assert r.status_code in (200, 202), r.text

    async def stored() -> bool:  # each sandbox's last fact: all of its facts are stored
        conn = await asyncpg.connect(stack.infra.database_url)
        try:
            killed = await conn.fetchval(
                "SELECT count(*) FROM sandbox_events WHERE sandbox_id = ANY($1::text[])"
                " AND type = 'sandbox.lifecycle.killed'",
                sandboxes,
            )
        finally:
            await conn.close()
        return bool(killed == len(sandboxes))

    await eventually(stored, within=20, interval=0.5)
    return longest


async def test_a_learned_timeout_reaches_the_policy_and_the_live_deadlines(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    project = unique("adaptive")
    r = await put(client, stack, project, {"idle": BOUNDS, "warnBeforeSeconds": 0})
    assert r.status_code == 202, r.text
    await applied(client, stack, project, r.json()["eventId"])
    live = await running(client, stack, project, 2)
    # Nothing learned yet: the upper bound.
    await timeouts_become(client, stack, live, 1800, within=5)
    best = await history(client, stack, project)

    await learn_once(load(TickerSettings, stack.env))

    async def learned() -> dict[str, Any] | None:
        r = await client.get(
            f"{stack.status_api.url}/api/projects/{project}/policy", headers=token(stack, project)
        )
        body: dict[str, Any] = r.json()
        return body if body["policy"]["idle"].get("learned") else None

    answer = await eventually(learned, within=15)
    value = answer["policy"]["idle"]["learned"]
    assert value["seconds"] == best, value
    # 12 gaps of each user's sandbox, the time after its last use, and after the live two's.
    assert (value["gaps"], value["regrets"]) == (4 * 12 + 4 + 2, 0)
    assert answer["policy"]["warnBeforeSeconds"] == 0  # the rest of the policy kept
    assert answer["effective"]["idleTimeoutSeconds"] == {"value": best, "source": "project"}
    await timeouts_become(client, stack, live, best, within=5)

    # A client may not claim a learned value; the default cannot learn.
    r = await put(client, stack, project, {"idle": {**BOUNDS, "learned": value}})
    assert (r.status_code, r.json()["field"]) == (422, "idle.learned")
    r = await put(client, stack, None, {"idle": BOUNDS})
    assert (r.status_code, r.json()["field"]) == (422, "idle")
