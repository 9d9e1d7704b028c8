"""Composition root of the actuator: the E2B client, the read model, the ledger, the use case
and the command loop that feeds it, built once from settings (no I/O: clients connect on first
use, the loop's consumer once the app has started)."""

from __future__ import annotations

import logging

import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer

from enforcer.actuator import metrics
from enforcer.actuator.carry_out import Actuator, Ports
from enforcer.actuator.command_loop import CommandLoop, LoopOptions
from enforcer.actuator.e2b import E2BSandboxControl
from enforcer.actuator.retry import RetryPolicy
from enforcer.settings import ActuatorSettings
from sandbox_common import topics
from sandbox_common.broker import BrokerDeadLetters, BrokerFacts, PatientKafkaBroker
from sandbox_common.consumer_lag import LagMonitor
from sandbox_common.e2b_api.client import E2BApi
from sandbox_common.kafka_reconnect import ConnectionState, keep_trying
from sandbox_common.probes import failing
from sandbox_common.readmodel.coordination import CommandLedger, SharedBudget
from sandbox_common.readmodel.policies import PolicyReader
from sandbox_common.readmodel.reader import ReadModelReader

log = logging.getLogger("enforcer.actuator")


def _observe(operation: str, status: str, seconds: float) -> None:
    metrics.E2B_SECONDS.labels(operation=operation, status=status).observe(seconds)


class ActuatorParts:
    def __init__(self, settings: ActuatorSettings, broker: PatientKafkaBroker) -> None:
        s = settings
        self._broker = broker
        self._redis: aioredis.Redis = s.redis()
        # One E2B budget for every actuator and reconciler replica (E2B limits the team).
        self._e2b = E2BApi.of(s, observe=_observe, pace=SharedBudget.of(self._redis, s))
        self._reader = ReadModelReader(self._redis, s.redis_layout())
        self.actuator = Actuator(
            Ports(
                self._reader,
                E2BSandboxControl(self._e2b),
                BrokerFacts(broker),
                BrokerDeadLetters(broker),
                CommandLedger(self._redis, s.actuator_ledger_ttl_seconds),
                PolicyReader(self._redis),
            ),
            retry=RetryPolicy(
                attempts=s.actuator_max_attempts,
                base_seconds=s.actuator_backoff_base_seconds,
                cap_seconds=s.actuator_backoff_cap_seconds,
            ),
            resume_timeout_seconds=s.e2b_resume_timeout_seconds,
            clock=s.clock(),
        )
        connection = broker.connection
        self.commands = CommandLoop(
            lambda: AIOKafkaConsumer(
                **connection.client_kwargs(),
                group_id=s.actuator_group_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                client_id="sandbox-actuator",
            ),
            self.actuator.handle,
            LoopOptions(max_in_flight=s.actuator_max_in_flight),
            connect=lambda consumer: keep_trying(
                consumer.start, ConnectionState(connection, "the actuator's consumer")
            ),
        )
        self._e2b_api_url = s.e2b_api_url
        self._lag = LagMonitor(
            broker.connection,
            s.actuator_group_id,
            topics.COMMANDS,
            s.consumer_lag_interval_seconds,
        )

    async def start(self) -> None:
        log.info("actuator opened", extra={"e2b_api_url": self._e2b_api_url})
        await self._lag.start()
        await self.commands.start()

    async def close(self) -> None:
        await self._lag.stop()
        await self._e2b.aclose()
        await self._redis.aclose()

    async def problems(self) -> list[str]:
        # E2B is not part of readiness: an E2B outage is retried per command, and taking the
        # actuator out of service would not make E2B come back sooner.
        loop = [] if self.commands.running else ["actuator: command loop not running"]
        return loop + await failing(self._broker, {"redis": self._reader.ping})
