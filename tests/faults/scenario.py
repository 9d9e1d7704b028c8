"""One fault scenario: a steady load of signed webhooks with the projector's lag watched, a
fault injected by the test meanwhile, then the figures and the checks every fault must pass."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from bench.webhooks import build_request

from sandbox_common import e2b, topics
from tests.faults.canaries import check_canaries, eventually_paused
from tests.faults.conftest import load_settings
from tests.faults.invariants import TopicFold, compare_postgres, compare_redis, snapshot
from tests.faults.load import Delivery, Load
from tests.faults.progress import EndOffsets, LagWatch, committed, drained, redis_caught_up
from tests.faults.report import ScenarioFigures
from tests.faults.rig import IDLE_TIMEOUT_SECONDS, Rig

IDLE_SANDBOXES = 2
# Each load sandbox goes through this; every tenth is killed at the end instead of resumed.
STEPS = ("created", "updated", "paused", "resumed", "updated", "paused", "resumed", "updated")


@dataclass
class Scenario:
    rig: Rig
    offsets: EndOffsets
    figures: ScenarioFigures
    deliveries: list[Delivery]
    load: Load
    watch: LagWatch
    idle: dict[str, str] = field(default_factory=dict)  # paused by the enforcer, once
    drained_at: float = 0.0

    @classmethod
    async def begin(
        cls, rig: Rig, offsets: EndOffsets, name: str, rate: int | None = None
    ) -> Scenario:
        """The load of this scenario (not sent yet; FAULTS_RATE unless `rate` is given) and its
        idle sandboxes (created now)."""
        default_rate, seconds = load_settings()
        rate = rate or default_rate
        idle = {}
        for i in range(IDLE_SANDBOXES):
            project = f"idle-{name}-{uuid.uuid4().hex[:6]}-{i}"
            idle[project] = await rig.create_sandbox(project, 10)
        deliveries = webhooks(rig, int(rate * seconds))
        ports = [p.port for p in rig.replicas("ingest")]
        load = Load("127.0.0.1", ports, deliveries, rate=rate)
        watch = LagWatch(offsets, rig.infra.database_url)
        return cls(
            rig, offsets, ScenarioFigures(name, rate, seconds), deliveries, load, watch, idle
        )

    @contextlib.asynccontextmanager
    async def under_load(self) -> AsyncIterator[None]:
        """The body runs while the load is sent; on leaving, the rest of the load is sent and
        the projector drained."""
        watching = asyncio.create_task(self.watch.run())
        sending = asyncio.create_task(self.load.run())
        try:
            yield
            await sending
            self.figures.drain_s = await drained(
                self.offsets, self.rig.infra.database_url, within=120
            )
            self.drained_at = time.monotonic()
        finally:
            watching.cancel()
            sending.cancel()
            await asyncio.gather(watching, sending, return_exceptions=True)

    def summarize(self, restarted_at: float) -> ScenarioFigures:
        """The load's figures, `restarted_at` being when the victim was started again."""
        f, figures = self.load.figures, self.figures
        figures.sent, figures.ok, figures.failed = f.sent, f.ok, f.failed
        figures.events, figures.webhook_gap_s = len(self.deliveries), f.longest_gap()
        figures.max_lag = self.watch.max_lag
        figures.retried = sum(1 for d in self.deliveries if d.attempts > 1)
        delays = sorted(d.delay for d in self.deliveries if d.delay is not None)
        if delays:
            figures.ack_p50_s, figures.ack_p99_s = (
                delays[len(delays) // 2],
                delays[len(delays) * 99 // 100],
            )
            figures.ack_max_s = delays[-1]
        caught_up = self.watch.caught_up(restarted_at, figures.rate)
        figures.caught_up_s = self.drained_at - restarted_at if caught_up is None else caught_up
        figures.unacked = len(self.load.unacked)
        return figures

    async def check(self, fold: TopicFold, *, copies_allowed: bool) -> None:
        """What must hold after every fault. `copies_allowed`: a webhook retried after its
        record went out may be on the topic twice (a crash of ingest itself)."""
        rig, figures = self.rig, self.figures
        await eventually_paused(rig, self.idle)
        assert rig.heartbeats is not None
        # PostgreSQL has every record; Redis follows (pipeline.py): how long it takes to hold
        # at least what PostgreSQL holds now is a figure. Measured with the heartbeats still
        # running: the busy sandboxes must not go idle while Redis catches up.
        await drained(self.offsets, rig.infra.database_url, within=60)
        figures.extra["redis_after_postgres_s"] = await redis_caught_up(
            rig.infra.redis_url, await snapshot(rig.infra.database_url), IDLE_TIMEOUT_SECONDS, 90
        )
        rig.heartbeats.running.clear()  # quiet: the read models must stand still to be compared
        try:
            await drained(self.offsets, rig.infra.database_url, within=60, quiet=3)
            quiet = await snapshot(rig.infra.database_url)
            await redis_caught_up(rig.infra.redis_url, quiet, IDLE_TIMEOUT_SECONDS, within=30)
            figures.extra["committed_after_postgres_s"] = await committed(
                rig.infra.kafka, within=60
            )
            snap = await snapshot(rig.infra.database_url)
            await fold.advance(snap.offsets)
            # Messages of their own: pytest rewrites the asserts of test modules only.
            problems = compare_postgres(fold, snap)
            assert problems == [], problems
            problems = await compare_redis(rig.infra.redis_url, snap, IDLE_TIMEOUT_SECONDS)
            assert problems == [], problems
        finally:
            rig.heartbeats.running.set()
        figures.checked.append("read models = fold of the topic")

        # Every webhook was answered 2xx in the end (E2B keeps retrying), and each is on the
        # topic: exactly once when its first delivery was answered, at least once when retried.
        assert figures.unacked == 0, [d.event_id for d in self.load.unacked][:5]
        for d in self.deliveries:
            copies = fold.counts[d.event_id]
            assert copies == 1 if d.attempts == 1 else copies >= 1, (d.event_id, d.attempts, copies)
            assert d.event_id in snap.history, f"{d.event_id} not in the history"
        figures.duplicates = sum(fold.counts[d.event_id] - 1 for d in self.deliveries)
        print("\n" + figures.line())
        if not copies_allowed:
            # A record the broker took but did not acknowledge in time lands later: the retry of
            # a webhook answered 503 waits for it instead of publishing a copy. Only a crash of
            # ingest itself (record out, answer lost) leaves a copy; history and fold absorb it.
            assert figures.duplicates == 0, f"{figures.duplicates} copies on the topic"
        async with rig.sim_api() as api:
            deliveries_by_sim = (await api.get("/_sim/deliveries")).json()
        answered = [d["eventId"] for d in deliveries_by_sim if 200 <= (d.get("status") or 0) < 300]
        assert answered, "the simulator delivered nothing"
        assert not [e for e in answered if fold.counts[e] == 0], (
            "a 2xx'd E2B delivery is not on the topic"
        )
        dead = await self.offsets.of(topics.LIFECYCLE_DLQ)
        assert sum(dead.values()) == 0, f"records were dead-lettered: {dead}"
        figures.checked.append("every 2xx on the topic")
        await check_canaries(rig, self.idle)
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
