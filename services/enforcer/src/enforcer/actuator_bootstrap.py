"""Composition root of the actuator: options, clients and the use case, built once at start-up."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from faststream.kafka import KafkaBroker

from enforcer.actuator import Actuator, RetryPolicy
from enforcer.actuator_adapters import (
    KafkaDeadLetters,
    KafkaFacts,
    RedisCommandLedger,
    RedisStatusReader,
)
from enforcer.e2b_client import E2BClient
from enforcer.rate_limit import TokenBucket
from sandbox_common import redis_pool
from sandbox_common.settings import Settings

log = logging.getLogger("enforcer.actuator")


@dataclass(frozen=True)
class ActuatorOptions:
    """The actuator's knobs, from `Settings` (ACTUATOR_*, E2B_*) or built directly by tests."""

    host: str = "127.0.0.1"
    port: int = 8084
    group_id: str = "sandbox-actuator"
    # Consumers in this process (one partition is handled by one of them, in order): a command
    # in backoff then blocks only its own partitions.
    workers: int = 4
    e2b_timeout_seconds: float = 10.0
    e2b_max_concurrency: int = 32
    e2b_rate_per_second: float = 100.0
    e2b_burst: int = 100
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @classmethod
    def from_settings(cls, s: Settings) -> ActuatorOptions:
        return cls(
            host=s.actuator_host,
            port=s.actuator_port,
            group_id=s.actuator_group_id,
            workers=s.actuator_workers,
            e2b_timeout_seconds=s.e2b_timeout_seconds,
            e2b_max_concurrency=s.e2b_max_concurrency,
            e2b_rate_per_second=s.e2b_rate_per_second,
            e2b_burst=s.e2b_rate_burst,
            retry=RetryPolicy(
                attempts=s.actuator_max_attempts,
                base_seconds=s.actuator_backoff_base_seconds,
                cap_seconds=s.actuator_backoff_cap_seconds,
            ),
        )


class Resources:
    """Everything the subscriber needs; opened in the app's startup hook, never at import."""

    def __init__(self, settings: Settings, options: ActuatorOptions, broker: KafkaBroker) -> None:
        self._settings, self._options, self._broker = settings, options, broker
        self._redis: aioredis.Redis | None = None
        self._e2b: E2BClient | None = None
        self._reader: RedisStatusReader | None = None
        self._actuator: Actuator | None = None

    @property
    def actuator(self) -> Actuator:
        assert self._actuator is not None, "resources not opened"
        return self._actuator

    async def open(self) -> None:
        s, o = self._settings, self._options
        self._redis = redis_pool.redis_client(s.redis_url, s.redis_max_connections)
        self._e2b = E2BClient(
            s.e2b_api_url,
            s.e2b_api_key,
            timeout_seconds=o.e2b_timeout_seconds,
            max_concurrency=o.e2b_max_concurrency,
            limiter=TokenBucket(o.e2b_rate_per_second, o.e2b_burst),
        )
        self._reader = RedisStatusReader(self._redis)
        self._actuator = Actuator(
            self._reader,
            self._e2b,
            KafkaFacts(self._broker),
            KafkaDeadLetters(self._broker),
            retry=o.retry,
            ledger=RedisCommandLedger(self._redis),
            resume_timeout_seconds=s.e2b_resume_timeout_seconds,
        )
        log.info("actuator opened", extra={"e2b_api_url": s.e2b_api_url})

    async def close(self) -> None:
        if self._e2b is not None:
            await self._e2b.aclose()
        if self._redis is not None:
            await self._redis.aclose()

    async def problems(self) -> list[str]:
        # E2B is not part of readiness: an E2B outage is retried per command, and taking the
        # actuator out of service would not make E2B come back sooner.
        found = []
        if not await self._broker.ping(timeout=2.0):
            found.append("kafka: broker not reachable")
        try:
            assert self._reader is not None, "resources not opened"
            await self._reader.ping()
        except Exception as exc:  # readiness reports any failure, whatever its type
            found.append(f"redis: {exc.__class__.__name__}: {exc}")
        return found
