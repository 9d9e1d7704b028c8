"""Composition root of ingest: the producer, the dedupe store and the intake use case, built
once from settings (no I/O: the producer connects in the app's lifespan)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ingest.adapters.dedupe import SeenEvents
from ingest.guard import SignatureGuard
from ingest.handlers import WebhookIntake
from ingest.settings import IngestSettings
from sandbox_common.kafka_publisher import KafkaPublisher


class IngestParts:
    def __init__(self, settings: IngestSettings) -> None:
        s = settings
        s.require(*IngestSettings.REQUIRED)
        self._redis = s.redis()
        self.publisher = KafkaPublisher(
            s.kafka_connection(), s.ingest_publish_timeout_seconds, s.ingest_kafka_linger_ms
        )
        self.dedupe = SeenEvents(self._redis, s.ingest_dedupe_ttl_seconds)
        self.guard = SignatureGuard(
            s.auth_failure_limiter(time.monotonic),
            s.http_auth_failure_window_seconds,
            time.monotonic,
        )
        self.intake = WebhookIntake(
            s.webhook_secrets(), s.project_metadata_key, self.publisher, self.dedupe
        )

    def provide_intake(self) -> WebhookIntake:
        """For the routes' `intake` parameter (Litestar's dependency injection)."""
        return self.intake

    def provide_parts(self) -> IngestParts:
        return self

    @asynccontextmanager
    async def running(self, _app: object) -> AsyncIterator[None]:
        """The app's lifespan."""
        await self.publisher.start()
        try:
            yield
        finally:
            await self.dedupe.drain()
            await self.publisher.stop()
            await self._redis.aclose()
