"""What ingest is given: Kafka, Redis (dedupe markers), the webhook secret, its own knobs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from sandbox_common.settings import (
    HttpServerSettings,
    KafkaSettings,
    LogSettings,
    NonNegative,
    Port,
    Positive,
    ProjectKeySettings,
    RedisSettings,
    Seconds,
    WebhookSecretSettings,
)


@dataclass(frozen=True, kw_only=True)
class IngestSettings(
    KafkaSettings,
    RedisSettings,
    ProjectKeySettings,
    WebhookSecretSettings,
    HttpServerSettings,
    LogSettings,
):
    REQUIRED: ClassVar[tuple[str, ...]] = ("e2b_webhook_secret",)
    LISTEN_ON: ClassVar[tuple[str, str]] = ("ingest_host", "ingest_port")
    ingest_host: str = "127.0.0.1"
    ingest_port: Port = 8080
    ingest_max_body_bytes: Positive = 256 * 1024
    ingest_publish_timeout_seconds: Seconds = 10.0
    # An hour covers E2B's redeliveries; PostgreSQL's unique event id deduplicates for ever.
    # A week cost about 60 bytes per webhook kept for 7 days: 600 GB of Redis at 10k/s.
    ingest_dedupe_ttl_seconds: Positive = 3600
    # No deliberate wait: aiokafka keeps one produce request in flight and gathers everything
    # that arrives meanwhile into the next one, so under load records are batched anyway, and
    # a linger only adds its full value to every webhook's latency.
    ingest_kafka_linger_ms: NonNegative = 0
