"""The savings ledger through the real path (issue 18, item 3): E2B's webhooks of a known
history (with E2B's own run figures) through ingest and the projector into PostgreSQL, and
status-api's ledger over them, against figures computed by hand."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.connected.conftest import Stack
from tests.connected.helpers import T0, eventually, post_webhook, token, unique, webhook

pytestmark = pytest.mark.connected

VCPU, GIB = 0.000014, 0.0000045  # the settings' defaults (E2B's prices)
PER_SECOND = 2 * VCPU + 0.5 * GIB  # 2 vCPUs, 512 MiB
RUN = {"vcpu_count": 2, "memory_mb": 512}


async def test_a_projects_ledger_matches_the_figures_computed_by_hand(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    project, sandbox = unique("savings"), unique("sbx")
    # On a tick of the seed's 2-minute cron, so its pauses land where computed below.
    start = math.floor((datetime.now(UTC) - timedelta(hours=2)).timestamp() / 120) * 120

    def at(offset: float) -> float:
        return start + offset - T0.timestamp()

    history = [
        webhook("created", sandbox, project, seconds=at(0)),
        webhook(
            "paused",
            sandbox,
            project,
            seconds=at(400),
            execution={**RUN, "execution_time": 400_000},
        ),
        webhook("resumed", sandbox, project, seconds=at(510)),  # 110 s after: a regret
        webhook(
            "paused",
            sandbox,
            project,
            seconds=at(1500),
            execution={**RUN, "execution_time": 990_000},
        ),
        webhook("killed", sandbox, project, seconds=at(3000)),
    ]
    for body in history:
        r = await post_webhook(client, stack, body)
        assert r.status_code in (200, 202), r.text
    since = datetime.fromtimestamp(start - 100, UTC).isoformat()
    until = datetime.fromtimestamp(start + 4000, UTC).isoformat()
    url = f"{stack.status_api.url}/api/projects/{project}/savings"

    async def ledger() -> dict[str, object] | None:
        r = await client.get(
            url, params={"from": since, "to": until}, headers=token(stack, project)
        )
        assert r.status_code == 200, r.text
        body: dict[str, object] = r.json()
        return body if body["pausedSeconds"] == 1610 else None  # every fact stored

    found = await eventually(ledger, within=20, interval=0.5)
    assert found["sandboxes"] == 1
    assert (found["runningSeconds"], found["pauses"], found["regrets"]) == (1390, 2, 1)
    assert found["regretRate"] == 0.5
    # E2B's execution_time: 400 s + 990 s at 2 vCPUs and 512 MiB.
    assert found["cost"] == pytest.approx(1390 * PER_SECOND, abs=1e-6)
    assert found["resumeWaits"] == {"count": 0, "meanSeconds": None, "maxSeconds": None}
    # The seed's cron on the same uses (0 and 510): paused at the ticks 240 and 720.
    assert found["seed"] == {
        "runningSeconds": 450,
        "pauses": 2,
        "regrets": 1,
        "cost": pytest.approx(450 * PER_SECOND, abs=1e-6),
        "runningSecondsAvoided": 450 - 1390,
        "costAvoided": pytest.approx((450 - 1390) * PER_SECOND, abs=1e-6),
    }
    unenforced = found["noEnforcement"]
    assert isinstance(unenforced, dict)
    assert (unenforced["runningSeconds"], unenforced["runningSecondsAvoided"]) == (3000, 1610)

    # The fleet's (admin) holds it too; periods it does not answer are a 400.
    fleet = await client.get(
        f"{stack.status_api.url}/api/savings",
        params={"from": since, "to": until},
        headers=token(stack, admin=True),
    )
    assert fleet.status_code == 200, fleet.text
    assert fleet.json()["sandboxes"] >= 1
    assert fleet.json()["runningSeconds"] >= 1390
    for params in ({"from": until, "to": since}, {"from": "2026-01-01T00:00:00Z"}):
        r = await client.get(url, params=params, headers=token(stack, project))
        assert r.status_code == 400, r.text
