"""Kill -9 each part of the system under a steady load of signed webhooks, restart it, and check
that nothing acknowledged was lost or doubled, that the read models equal the fold of the topic,
that no busy sandbox was paused, and that everything came back on its own."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from bench.webhooks import build_request

from sandbox_common import e2b, topics
from tests.faults.canaries import check_canaries, eventually_paused
from tests.faults.conftest import load_settings
from tests.faults.invariants import TopicFold, compare_postgres, compare_redis, snapshot
from tests.faults.load import Delivery, Load
from tests.faults.progress import EndOffsets, LagWatch, drained
from tests.faults.report import ScenarioFigures
from tests.faults.rig import IDLE_TIMEOUT_SECONDS, TARGETS, Rig

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]
DOWN_SECONDS = float(os.environ.get("FAULTS_DOWN_SECONDS", "5"))
IDLE_SANDBOXES = 2
# Each load sandbox goes through this; every tenth is killed at the end instead of resumed.
STEPS = ("created", "updated", "paused", "resumed", "updated", "paused", "resumed", "updated")


@pytest.mark.parametrize("target", TARGETS)
async def test_kill_restart_loses_nothing(
    target: str,
    rig: Rig,
    fold: TopicFold,
    offsets: EndOffsets,
    results: list[ScenarioFigures],
) -> None:
    rate, seconds = load_settings()
    figures = ScenarioFigures(target, rate, seconds)
    idle = {}  # sandboxes idle from the start: the enforcer must still pause them, once
    for i in range(IDLE_SANDBOXES):
        project = f"idle-{target}-{uuid.uuid4().hex[:6]}-{i}"
        idle[project] = await rig.create_sandbox(project, 10)
    deliveries = webhooks(rig, int(rate * seconds))
    load = Load("127.0.0.1", rig.services["ingest"].port, deliveries, rate=rate)
    watch = LagWatch(offsets, rig.infra.database_url)
    watching = asyncio.create_task(watch.run())
    sending = asyncio.create_task(load.run())
    try:
        await asyncio.sleep(seconds / 3)
        killed_at = time.monotonic()
        await rig.kill(target)
        await asyncio.sleep(DOWN_SECONDS)
        await rig.restart(target)
        restarted_at = time.monotonic()
        figures.down_s = restarted_at - killed_at
        figures.recover_s = await recovered(rig, watch, restarted_at)
        await sending
        figures.drain_s = await drained(offsets, rig.infra.database_url, within=120)
        drained_at = time.monotonic()
    finally:
        watching.cancel()
        sending.cancel()
        await asyncio.gather(watching, sending, return_exceptions=True)
    f = load.figures
    figures.sent, figures.ok, figures.failed = f.sent, f.ok, f.failed
    figures.events, figures.webhook_gap_s, figures.max_lag = (
        len(deliveries),
        f.longest_gap(),
        watch.max_lag,
    )
    figures.retried = sum(1 for d in deliveries if d.attempts > 1)
    delays = sorted(d.delay for d in deliveries if d.delay is not None)
    if delays:
        figures.ack_p50_s, figures.ack_p99_s = (
            delays[len(delays) // 2],
            delays[len(delays) * 99 // 100],
        )
        figures.ack_max_s = delays[-1]
    caught_up = watch.caught_up(restarted_at, rate)
    figures.caught_up_s = drained_at - restarted_at if caught_up is None else caught_up
    figures.unacked = len(load.unacked)
    results.append(figures)  # in the session's table even if a check below fails

    await eventually_paused(rig, idle)
    assert rig.heartbeats is not None
    rig.heartbeats.running.clear()  # quiet: the read models must stand still to be compared
    try:
        await drained(offsets, rig.infra.database_url, within=60, quiet=3)
        snap = await snapshot(rig.infra.database_url)
        await fold.advance(snap.offsets)
        assert compare_postgres(fold, snap) == []
        assert await compare_redis(rig.infra.redis_url, snap, IDLE_TIMEOUT_SECONDS) == []
    finally:
        rig.heartbeats.running.set()
    figures.checked.append("read models = fold of the topic")

    # Every webhook was answered 2xx in the end (E2B keeps retrying), and each is on the topic:
    # exactly once when its first delivery was answered, at least once when it was retried.
    assert figures.unacked == 0, [d.event_id for d in load.unacked][:5]
    for d in deliveries:
        copies = fold.counts[d.event_id]
        assert copies == 1 if d.attempts == 1 else copies >= 1, (d.event_id, d.attempts, copies)
        assert d.event_id in snap.history
    figures.duplicates = sum(fold.counts[d.event_id] - 1 for d in deliveries)
    print("\n" + figures.line())
    if target != "ingest":
        # A record the broker took but did not acknowledge in time lands later: the retry of a
        # webhook answered 503 waits for it instead of publishing a copy. Only a crash of ingest
        # itself (record out, answer lost) leaves a copy; the history and the fold absorb it.
        assert figures.duplicates == 0
    async with rig.sim_api() as api:
        deliveries_by_sim = (await api.get("/_sim/deliveries")).json()
    answered = [d["eventId"] for d in deliveries_by_sim if 200 <= (d.get("status") or 0) < 300]
    assert answered, "the simulator delivered nothing"
    assert not [e for e in answered if fold.counts[e] == 0], (
        "a 2xx'd E2B delivery is not on the topic"
    )
    dead = await offsets.of(topics.LIFECYCLE_DLQ)
    assert sum(dead.values()) == 0, f"records were dead-lettered: {dead}"
    figures.checked.append("every 2xx on the topic")
    await check_canaries(rig, idle)
    figures.checked.append("no active sandbox paused; idle ones paused once")


def webhooks(rig: Rig, count: int) -> list[Delivery]:
    """`count` signed webhooks over count/len(STEPS) sandboxes, sent step by step."""
    run, base = uuid.uuid4().hex[:6], datetime.now(UTC) - timedelta(minutes=5)
    port, sandboxes = rig.services["ingest"].port, max(1, count // len(STEPS))
    out = []
    for step, kind in enumerate(STEPS):
        for j in range(sandboxes):
            last = step == len(STEPS) - 1
            kind_now = "killed" if last and j % 10 == 0 else kind
            event_id = str(uuid.uuid4())
            at = base + timedelta(seconds=step, microseconds=j)
            extra = (
                {"set_timeout": (at + timedelta(hours=1)).isoformat()}
                if kind == "updated"
                else None
            )
            body = json.dumps(
                e2b.build_webhook(
                    e2b.WebhookEvent(
                        id=event_id,
                        type=f"sandbox.lifecycle.{kind_now}",
                        sandbox_id=f"load-{run}-{j}",
                        timestamp=at,
                        metadata={"projectId": f"load-{run}-{j}"},
                        data=extra or {},
                    )
                )
            ).encode()
            headers = e2b.signed_headers(rig.webhook_secret, body)
            out.append(
                Delivery(
                    event_id, build_request("127.0.0.1", port, "/api/webhooks/e2b", headers, body)
                )
            )
    return out[:count]


async def recovered(rig: Rig, watch: LagWatch, since: float) -> float:
    """Seconds from the restart until every service is ready, ingest answers a new webhook 2xx
    and the projector writes offsets again; none of the services is restarted for this."""
    deadline, probe = since + 120, f"probe-{uuid.uuid4().hex[:8]}"
    while True:
        unready = await rig.unready()
        acked = not unready and await accepted(rig, probe)
        moved = watch.moved_since(since)
        if acked and moved:
            return time.monotonic() - since
        assert time.monotonic() < deadline, (
            f"not recovered on its own: unready {unready}, webhook accepted {acked}, "
            f"projector moved {moved}"
        )
        await asyncio.sleep(0.25)


async def accepted(rig: Rig, sandbox_id: str) -> bool:
    body = json.dumps(
        e2b.build_webhook(
            e2b.WebhookEvent(
                id=str(uuid.uuid4()),
                type="sandbox.lifecycle.updated",
                sandbox_id=sandbox_id,
                timestamp=datetime.now(UTC),
                metadata={"projectId": sandbox_id},
            )
        )
    ).encode()
    r = await rig.http.post(
        f"{rig.url('ingest')}/api/webhooks/e2b",
        content=body,
        headers=e2b.signed_headers(rig.webhook_secret, body),
    )
    return r.status_code == 200
