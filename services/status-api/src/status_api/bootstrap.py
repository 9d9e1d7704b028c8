"""Composition root of status-api: Redis, Kafka and PostgreSQL clients, the change hub, the
deadline warners and what the routes share (`Deps`), built once from settings (no I/O: `start`
connects what must be connected before serving)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from sandbox_common.api_key_rows import ApiKeyRows
from sandbox_common.kafka_publisher import KafkaPublisher
from sandbox_common.postgres_pool import PostgresPool
from sandbox_common.rate_limit import RateLimiter
from sandbox_common.readmodel.coordination import ActivityThrottle
from sandbox_common.readmodel.feed import ChangeFeed
from sandbox_common.readmodel.policies import PolicyReader
from sandbox_common.readmodel.reader import ReadModelReader
from sandbox_common.readmodel.tickets import SingleUseTickets
from sandbox_common.tasks import cancel_and_wait
from sandbox_common.whatif.replay import Prices
from status_api.access import Gate
from status_api.adapters.notification_targets import TargetStore
from status_api.adapters.policies import PolicyStore
from status_api.adapters.postgres import HistoryStore
from status_api.adapters.savings_facts import SavingsFacts
from status_api.adapters.tickets import StreamTickets
from status_api.api_key_auth import ApiKeyVerifier
from status_api.auth import TokenVerifier
from status_api.change_hub import ChangeHub
from status_api.deadline_warnings import DeadlineWarner, watches
from status_api.deps import Deps
from status_api.policies import Policies, setting_level
from status_api.receivers import Receivers, WarningNotices
from status_api.savings import SavingsLedger
from status_api.settings import StatusApiSettings
from status_api.stream_slots import StreamSlots
from status_api.views import WarnWindows
from status_api.warn_policy import BookFollower, WarnPolicy


class StatusApiParts:
    def __init__(self, settings: StatusApiSettings) -> None:
        s = settings
        s.require(*StatusApiSettings.REQUIRED)
        now = s.clock()
        # Handing out a connection is on every read's path: see sandbox_common.redis_pool for
        # why not redis-py's blocking pool (slow) nor its plain one (fails a burst of SSE
        # openings).
        self._redis = s.redis()
        # The feed followers (one per shard) block on XREAD: connections of their own, so they
        # never hold up reads.
        self._feed_redis = s.redis(blocking=False)
        layout = s.redis_layout()
        reader = ReadModelReader(self._redis, layout)
        self._hub = ChangeHub(ChangeFeed(self._feed_redis, layout=layout))
        windows = WarnWindows(
            pause=timedelta(seconds=s.status_api_warn_before_seconds),
            lifetime=timedelta(seconds=s.status_api_lifetime_warn_before_seconds),
            delete=timedelta(seconds=s.status_api_delete_warn_before_seconds),
        )
        feed = ChangeFeed(self._redis, s.change_feed_max_length, layout)
        # Projects' own pause warning lead times (policies' warnBeforeSeconds).
        self._book = BookFollower(PolicyReader(self._redis))
        warn = WarnPolicy(windows, self._book.current)
        # History and fleet need PostgreSQL; status reads must not wait for it at start: the
        # pool is opened by the first query.
        self._pg = PostgresPool(s.database_url, min_size=0, max_size=4, timeout=5)
        notices = WarningNotices(self._pg)
        self._warners = [
            DeadlineWarner(reader, feed, watch, now, warn=warn, notices=notices)
            for watch in watches(windows)
        ]
        # Writes (activity, wake, pause) go to Kafka like every other fact; reads stay on
        # Redis. The producer connects lazily, so reads work even while the broker is down.
        self._publisher = KafkaPublisher(
            s.kafka_connection(),
            s.status_api_publish_timeout_seconds,
            client_id="sandbox-status-api",
        )
        self.deps = Deps(
            gate=Gate(
                TokenVerifier(s.status_api_jwt_secret, s.token_policy()),
                RateLimiter(s.status_api_rate_limit_per_second, time.monotonic),
                s.auth_failure_limiter(time.monotonic),
                ApiKeyVerifier(ApiKeyRows(self._pg)),
            ),
            reader=reader,
            history=HistoryStore(self._pg),
            hub=self._hub,
            throttle=ActivityThrottle(self._redis, s.activity_throttle_seconds),
            publisher=self._publisher,
            clock=now,
            warn=warn,
            keep_alive=timedelta(seconds=s.e2b_keep_alive_seconds),
            sse_keepalive_seconds=s.status_api_sse_keepalive_seconds,
            deadline_rule=s.deadline_rule(),
            tickets=StreamTickets(SingleUseTickets(self._redis)),
            slots=StreamSlots(s.status_api_max_streams, s.status_api_max_streams_per_token),
            policies=Policies(
                PolicyStore(self._pg),
                self._publisher,
                setting_level(s.idle_timeout_seconds, s.status_api_warn_before_seconds),
                now,
            ),
            busy_max=timedelta(seconds=s.status_api_busy_max_seconds),
            receivers=Receivers(TargetStore(self._pg), s.reach()),
            savings=SavingsLedger(
                SavingsFacts(self._pg),
                Prices(s.price_vcpu_second, s.price_gib_second),
                s.regret_window_seconds,
                now,
            ),
        )

    def provide_deps(self) -> Deps:
        """For the routes' `deps` parameter (Litestar's dependency injection)."""
        return self.deps

    @asynccontextmanager
    async def running(self, _app: object) -> AsyncIterator[None]:
        """The app's lifespan."""
        await self._publisher.start()
        await self._hub.start()
        warners = [
            asyncio.create_task(w.run(), name=f"{w.watch.event}-warner") for w in self._warners
        ]
        warners.append(asyncio.create_task(self._book.run(), name="policy-book"))
        try:
            yield
        finally:
            for task in warners:
                await cancel_and_wait(task)
            await self._hub.stop()
            await self._publisher.stop()
            await self._pg.close()
            await self._feed_redis.aclose()
            await self._redis.aclose()
