"""Policies applied at once (issue 17, item 2), through the real path: a PUT to status-api, the
fact on Kafka, the projector folding it and re-indexing the RUNNING sandboxes it governs, the
status documents (and the idle index the enforcer reads) moved; replay rebuilds the same."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

import httpx
import pytest

from sandbox_common.readmodel.reader import ReadModelReader
from tests.connected import redis_mode
from tests.connected.conftest import Stack
from tests.connected.helpers import ago, eventually, post_webhook, token, unique, webhook
from tests.connected.test_policies_api import applied, default_restored, put

pytestmark = pytest.mark.connected

__all__ = ["default_restored"]  # a fixture used here

SETTING = 180  # the stack's IDLE_TIMEOUT_SECONDS (the default)


async def docs(
    client: httpx.AsyncClient, stack: Stack, sandboxes: list[str]
) -> dict[str, dict[str, Any]]:
    found = {}
    for sid in sandboxes:
        r = await client.get(
            f"{stack.status_api.url}/api/sandboxes/{sid}", headers=token(stack, admin=True)
        )
        if r.status_code == 200:
            found[sid] = {**r.json(), "etag": r.headers["etag"]}
    return found


def idle_seconds(doc: dict[str, Any]) -> float | None:
    """The idle timeout a document's deadline shows (None: no deadline)."""
    if doc["idleDeadlineAt"] is None:
        return None
    deadline = datetime.fromisoformat(doc["idleDeadlineAt"])
    return (deadline - datetime.fromisoformat(doc["lastActiveAt"])).total_seconds()


async def running(client: httpx.AsyncClient, stack: Stack, project: str, n: int) -> list[str]:
    """n new RUNNING sandboxes of `project`, shown by status-api."""
    sandboxes = [unique("sbx") for _ in range(n)]
    for sid in sandboxes:
        r = await post_webhook(client, stack, webhook("created", sid, project, seconds=ago(1)))
        assert r.status_code in (200, 202), r.text

    async def shown() -> bool:
        return len(await docs(client, stack, sandboxes)) == n

    await eventually(shown, within=15)
    return sandboxes


async def timeouts_become(
    client: httpx.AsyncClient, stack: Stack, sandboxes: list[str], want: float | None, within: float
) -> float:
    """Seconds until every sandbox's document shows the `want` timeout (fails after `within`)."""
    started = time.monotonic()

    async def moved() -> bool:
        found = await docs(client, stack, sandboxes)
        return all(idle_seconds(d) == want for d in found.values()) and len(found) == len(sandboxes)

    await eventually(moved, within=within, interval=0.02)
    return time.monotonic() - started


async def test_a_project_policy_moves_its_live_deadlines_within_a_second(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    project, bystander = unique("applied"), unique("bystander")
    mine = await running(client, stack, project, 5)
    theirs = await running(client, stack, bystander, 2)
    before = await docs(client, stack, mine + theirs)
    assert {idle_seconds(d) for d in before.values()} == {SETTING}

    r = await put(client, stack, project, {"idleTimeoutSeconds": 3600})
    assert r.status_code == 202, r.text
    took = await timeouts_become(client, stack, mine, 3600, within=1.0)
    print(f"deadlines moved {took * 1000:.0f} ms after the PUT was accepted")
    after = await docs(client, stack, mine + theirs)
    for sid in mine:  # a new revision each: ETags change, SSE clients are sent the document
        assert after[sid]["etag"] != before[sid]["etag"]
    for sid in theirs:
        assert after[sid] == before[sid]

    # The enforcer's index moved with the documents: none of them is due before the hour.
    redis = redis_mode.client(stack.infra.redis_url)
    try:
        scores = await ReadModelReader(redis).idle_deadlines()
    finally:
        await redis.aclose()
    for sid in mine:
        want = datetime.fromisoformat(after[sid]["idleDeadlineAt"]).timestamp()
        assert scores[sid] == pytest.approx(want, abs=0.01)

    # Never pause: no deadline at all, and out of the index; then back to the setting.
    r = await put(client, stack, project, {"neverPause": True})
    assert r.status_code == 202, r.text
    await timeouts_become(client, stack, mine, None, within=1.0)
    r = await put(client, stack, project, {})
    assert r.status_code == 202, r.text
    await timeouts_become(client, stack, mine, SETTING, within=1.0)


async def test_a_new_sandbox_of_a_governed_project_gets_the_policys_deadline(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    project = unique("governed")
    r = await put(client, stack, project, {"idleTimeoutSeconds": 900})
    assert r.status_code == 202, r.text
    await applied(client, stack, project, r.json()["eventId"])
    (sid,) = await running(client, stack, project, 1)
    # Metadata still comes first.
    own = unique("sbx")
    body = webhook("created", own, project, seconds=ago(1), metadata={"idleTimeoutSeconds": "60"})
    assert (await post_webhook(client, stack, body)).status_code in (200, 202)
    await timeouts_become(client, stack, [sid], 900, within=5)
    await timeouts_become(client, stack, [own], 60, within=5)


@pytest.mark.usefixtures("default_restored")
async def test_a_changed_default_re_indexes_the_sandboxes_it_governs(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    governed, own_policy = unique("by-default"), unique("own-policy")
    r = await put(client, stack, own_policy, {"idleTimeoutSeconds": 120})
    assert r.status_code == 202, r.text
    await applied(client, stack, own_policy, r.json()["eventId"])
    theirs = await running(client, stack, governed, 3)
    kept = await running(client, stack, own_policy, 2)
    r = await put(client, stack, None, {"idleTimeoutSeconds": 1800})
    assert r.status_code == 202, r.text
    await timeouts_become(client, stack, theirs, 1800, within=5)
    assert {idle_seconds(d) for d in (await docs(client, stack, kept)).values()} == {120}


async def test_a_policys_warn_before_sets_when_its_frontends_are_warned(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    """status-api warns a project's frontends as far ahead as its policy says (it copies the
    policies from Redis every few seconds); 0 warns not at all."""
    project = unique("warned")
    r = await put(client, stack, project, {"idleTimeoutSeconds": 600})
    assert r.status_code == 202, r.text
    await applied(client, stack, project, r.json()["eventId"])
    (sid,) = await running(client, stack, project, 1)
    await timeouts_become(client, stack, [sid], 600, within=5)

    async def imminent() -> bool:
        return bool((await docs(client, stack, [sid]))[sid]["pauseImminent"])

    # 10 minutes ahead is outside the setting's STATUS_API_WARN_BEFORE_SECONDS.
    assert not await imminent()
    r = await put(client, stack, project, {"idleTimeoutSeconds": 600, "warnBeforeSeconds": 3600})
    assert r.status_code == 202, r.text

    await eventually(imminent, within=10)
    r = await put(client, stack, project, {"idleTimeoutSeconds": 600, "warnBeforeSeconds": 0})
    assert r.status_code == 202, r.text

    async def unflagged() -> bool:
        return not await imminent()

    await eventually(unflagged, within=10)
