"""`sandbox-enforcer`: the idle ticker, with health, readiness and metrics over HTTP.

Ticks run one after another in one task (never overlapping), only on the replica holding the
lease, at the next scheduled time after *now* (missed ticks coalesce into one).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

import redis.asyncio as aioredis
import uvicorn
from faststream.asgi import AsgiFastStream
from faststream.kafka import KafkaBroker

from enforcer import ticker_metrics as metrics
from enforcer.reconciler_app import ReconcileLoop
from enforcer.repair import repair_stuck
from enforcer.schedule import Schedule, parse_schedule
from enforcer.ticker import run_tick
from enforcer.ticker_adapters import (
    KafkaPausePublisher,
    RedisDeadlineIndex,
    RedisLease,
    RedisRequestedPauses,
    RedisStatusDocs,
    RedisTransitionalIndex,
)
from sandbox_common import logging as jsonlog
from sandbox_common import redis_pool
from sandbox_common.probes import probe_routes
from sandbox_common.settings import Settings

log = logging.getLogger("enforcer")


class Ticker:
    def __init__(self, settings: Settings, broker: KafkaBroker, schedule: Schedule) -> None:
        self._settings = settings
        self._broker = broker
        self._schedule = schedule
        self._redis: aioredis.Redis | None = None
        self._lease: RedisLease | None = None
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self._redis = redis_pool.redis_client(
            self._settings.redis_url, self._settings.redis_max_connections
        )
        self._lease = RedisLease(self._redis, self._settings.enforcer_lease_seconds)

    async def start(self) -> None:
        s = self._settings
        log.info(
            "enforcer ticking on %r (enabled=%s, dry_run=%s)",
            self._schedule.expression,
            s.enforcer_enabled,
            s.enforcer_dry_run,
        )
        self._task = asyncio.create_task(self._run(), name="enforcer-ticks")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._lease is not None:
            with contextlib.suppress(Exception):  # best effort: the lease expires anyway
                await self._lease.release()
        if self._redis is not None:
            await self._redis.aclose()

    async def _run(self) -> None:
        assert self._redis is not None
        assert self._lease is not None
        s, lease = self._settings, self._lease
        index, docs = RedisDeadlineIndex(self._redis), RedisStatusDocs(self._redis)
        transitional = RedisTransitionalIndex(self._redis)
        # Not asked again until a stuck one would be repaired anyway.
        requested = RedisRequestedPauses(self._redis, s.enforcer_stuck_after_seconds)
        publisher = KafkaPausePublisher(self._broker)
        while True:
            now = datetime.now(UTC)
            await asyncio.sleep((self._schedule.next_after(now) - now).total_seconds())
            if not s.enforcer_enabled:
                continue
            try:
                if not await lease.hold():
                    metrics.TICKS.labels(outcome="not_leader").inc()
                    continue
                with metrics.TICK_SECONDS.time():
                    report = await run_tick(
                        datetime.now(UTC),
                        index,
                        docs,
                        publisher,
                        batch_size=s.enforcer_batch_size,
                        dry_run=s.enforcer_dry_run,
                        requested=requested,
                    )
                    if not s.enforcer_dry_run:
                        report.repaired = await repair_stuck(
                            datetime.now(UTC),
                            transitional,
                            docs,
                            publisher,
                            stuck_after=timedelta(seconds=s.enforcer_stuck_after_seconds),
                            batch_size=s.enforcer_batch_size,
                        )
            except Exception:  # a failed tick is logged and counted; the next one tries again
                metrics.TICKS.labels(outcome="error").inc()
                log.exception("[Sandbox Idle Enforcer] tick failed")
                continue
            metrics.TICKS.labels(outcome="ran").inc()
            metrics.LAST_TICK.set_to_current_time()
            metrics.CHECKED.inc(report.checked)
            metrics.PAUSE_REQUESTS.inc(report.paused)
            metrics.WOULD_PAUSE.inc(report.would_pause)
            metrics.ERRORS.inc(report.errors)
            metrics.REPAIRED.inc(report.repaired)

    async def problems(self) -> list[str]:
        found = []
        if self._task is None or self._task.done():
            found.append("ticker: loop not running")
        if not await self._broker.ping(timeout=2.0):
            found.append("kafka: broker not reachable")
        try:
            assert self._redis is not None
            await self._redis.ping()
        except Exception as exc:  # readiness reports any failure, whatever its type
            found.append(f"redis: {exc.__class__.__name__}: {exc}")
        return found


def build_app(settings: Settings) -> AsgiFastStream:
    schedule = parse_schedule(settings.enforcer_schedule)  # a bad schedule fails at start-up
    broker = KafkaBroker(
        settings.kafka_bootstrap_servers,
        acks="all",
        enable_idempotence=True,
        logger=log,
        log_level=logging.DEBUG,
    )
    ticker = Ticker(settings, broker, schedule)
    reconciler = ReconcileLoop(settings, parse_schedule(settings.reconciler_schedule))

    return AsgiFastStream(
        broker,
        asgi_routes=probe_routes(ticker.problems),
        on_startup=[ticker.open],
        after_startup=[ticker.start, reconciler.start],
        on_shutdown=[ticker.stop, reconciler.stop],
        logger=log,
    )


def main() -> None:
    settings = Settings.from_env()
    jsonlog.configure("enforcer", settings.log_level)
    uvicorn.run(
        build_app(settings),
        host=settings.enforcer_host,
        port=settings.enforcer_port,
        log_config=None,
        lifespan="on",
    )
