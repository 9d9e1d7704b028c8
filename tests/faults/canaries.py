"""The sandboxes that tell whether idle enforcement survived a fault: busy ones (heartbeats)
must never be paused, idle ones must be paused exactly once; and what to show when not."""

from __future__ import annotations

import asyncio
import time

import asyncpg

from tests.faults.rig import Rig


async def status(rig: Rig, project: str) -> str:
    r = await rig.http.get(
        f"{rig.url('status-api')}/api/projects/{project}/sandbox", headers=rig.token(project)
    )
    return str(r.json()["status"]) if r.status_code == 200 else f"HTTP {r.status_code} {r.text}"


async def eventually_paused(rig: Rig, idle: dict[str, str], within: float = 90) -> None:
    deadline = time.monotonic() + within
    while (found := {p: await status(rig, p) for p in idle}) != dict.fromkeys(idle, "PAUSED"):
        if time.monotonic() > deadline:
            raise AssertionError(f"idle sandboxes not paused: {found}\n{await explain(rig, idle)}")
        await asyncio.sleep(0.5)


async def explain(rig: Rig, idle: dict[str, str]) -> str:
    """What happened to these sandboxes: their history in PostgreSQL and E2B's call log."""
    lines = []
    conn = await asyncpg.connect(rig.infra.database_url)
    try:
        for sandbox_id in idle.values():
            rows = await conn.fetch(
                "SELECT type, source, occurred_at, received_at, data FROM sandbox_events"
                " WHERE sandbox_id = $1 ORDER BY occurred_at",
                sandbox_id,
            )
            lines += [f"{sandbox_id}: {dict(r)}" for r in rows]
    finally:
        await conn.close()
    async with rig.sim_api() as api:
        for sandbox_id in idle.values():
            calls = (await api.get("/_sim/calls", params={"sandboxId": sandbox_id})).json()
            lines.append(f"{sandbox_id} E2B calls: {calls}")
    return "\n".join(lines)


async def check_canaries(rig: Rig, idle: dict[str, str]) -> None:
    async with rig.sim_api() as api:
        for project, sandbox_id in rig.active.items():
            found = await status(rig, project)
            assert found == "RUNNING", f"busy sandbox of {project}: {found}"
            calls = (
                await api.get("/_sim/calls", params={"sandboxId": sandbox_id, "op": "pause"})
            ).json()
            assert calls == [], f"active sandbox {sandbox_id} was paused: {calls}"
            assert (await api.get(f"/sandboxes/{sandbox_id}")).json()["state"] == "running"
        for sandbox_id in idle.values():
            calls = (
                await api.get("/_sim/calls", params={"sandboxId": sandbox_id, "op": "pause"})
            ).json()
            assert [c["status"] for c in calls].count(204) == 1, (sandbox_id, calls)
            assert (await api.get(f"/sandboxes/{sandbox_id}")).json()["state"] == "paused"
