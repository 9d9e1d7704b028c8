"""Short-lived Redis keys beside the read model, with the rules that go with them: leases (one
ticking enforcer, one reconciling one), heartbeat throttling, the E2B call budget the replicas
share, pre-warming's budget, and markers of work already done (a pause requested, a command
carried out). Losing any
of them costs a repeat or a moment of unshared pacing, never a wrong state: each is backed by a
deterministic id or a revision guard elsewhere."""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from sandbox_common.e2b_api.pacing import Pace, TokenBucket
from sandbox_common.readmodel import keys
from sandbox_common.readmodel.redis_text import text
from sandbox_common.settings import E2BApiSettings

log = logging.getLogger(__name__)

# Take the lease if free, or extend it if it is already ours; never take another's.
_HOLD = """
local holder = redis.call('GET', KEYS[1])
if holder == false or holder == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class LeaseName(StrEnum):
    TICKER = keys.TICKER_LEASE
    RECONCILER = keys.RECONCILER_LEASE
    LEARNER = keys.LEARNER_LEASE
    PREWARM = keys.PREWARM_LEASE


@dataclass(frozen=True)
class LeaseHolder:
    owner: str
    seconds_left: float | None


class Lease:
    """One replica at a time; the holder extends its lease each time it acts."""

    def __init__(self, client: aioredis.Redis, name: LeaseName, ttl_seconds: int) -> None:
        self.owner = f"enforcer-{uuid.uuid4().hex[:12]}"
        self._client = client
        self._key = name.value
        self._ttl_ms = ttl_seconds * 1000
        self._hold = client.register_script(_HOLD)
        self._release = client.register_script(_RELEASE)

    async def hold(self) -> bool:
        return bool(await self._hold(keys=[self._key], args=[self.owner, self._ttl_ms]))

    async def release(self) -> None:
        await self._release(keys=[self._key], args=[self.owner])


async def lease_holder(client: aioredis.Redis, name: LeaseName) -> LeaseHolder | None:
    async with client.pipeline(transaction=False) as pipe:
        pipe.get(name.value)
        pipe.pttl(name.value)
        holder, ttl_ms = await pipe.execute()
    if not holder:
        return None
    return LeaseHolder(text(holder), ttl_ms / 1000 if ttl_ms > 0 else None)


# GCRA with reservations, on the Redis server's clock (the replicas' clocks never meet). Each
# call takes the next slot at once and is told how long to wait for it: one round trip per call,
# no polling, arrival order across replicas. A deferral (E2B's 429 Retry-After) moves every
# later slot past it. KEYS: the budget. ARGV: interval us, burst tolerance us, defer us (0: a
# call). Returns the wait in us.
_BUDGET = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local interval, tolerance, defer = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local wait = 0
if defer > 0 then
  tat = math.max(tat, now + defer + tolerance)
else
  wait = math.max(0, tat - tolerance - now)
  tat = tat + interval
end
redis.call('SET', KEYS[1], string.format('%.0f', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
return wait
"""


class SharedBudget:
    """E2B's per-team rate limit is one budget for every replica: the actuators and the
    reconciler take their calls' slots from here instead of each pacing itself alone. While
    Redis cannot answer, calls are paced by this process's own bucket (`fallback`) rather than
    held up: Redis being down must not stop pauses reaching E2B."""

    def __init__(
        self,
        client: aioredis.Redis,
        rate_per_second: float,
        burst: int,
        fallback: Pace,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._script = client.register_script(_BUDGET)
        self._interval_us = max(1, math.ceil(1_000_000 / rate_per_second))
        self._tolerance_us = self._interval_us * max(0, burst - 1)
        self._fallback = fallback
        self._sleep = sleep
        self._degraded = False

    @classmethod
    def of(cls, client: aioredis.Redis, settings: E2BApiSettings) -> SharedBudget:
        """At E2B_RATE_PER_SECOND / E2B_RATE_BURST for all replicas together."""
        rate, burst = settings.e2b_rate_per_second, settings.e2b_rate_burst
        return cls(client, rate, burst, TokenBucket(rate, burst))

    async def acquire(self) -> None:
        try:
            wait_us = await self._script(
                keys=[keys.E2B_BUDGET], args=[self._interval_us, self._tolerance_us, 0]
            )
        except RedisError as exc:
            self._note(exc)
            await self._fallback.acquire()
            return
        self._note(None)
        if int(wait_us) > 0:
            await self._sleep(int(wait_us) / 1_000_000)

    async def defer(self, seconds: float) -> None:
        await self._fallback.defer(seconds)
        try:
            await self._script(
                keys=[keys.E2B_BUDGET],
                args=[self._interval_us, self._tolerance_us, max(1, math.ceil(seconds * 1e6))],
            )
        except RedisError as exc:
            self._note(exc)

    def _note(self, failure: RedisError | None) -> None:
        """One line when sharing stops and one when it resumes, not one per call."""
        if failure is not None and not self._degraded:
            log.warning(
                "E2B call budget not shared (Redis: %s): pacing this process alone", failure
            )
        elif failure is None and self._degraded:
            log.info("E2B call budget shared again")
        self._degraded = failure is not None


class ActivityThrottle:
    """At most one activity fact per sandbox per window."""

    def __init__(self, client: aioredis.Redis, window_seconds: float) -> None:
        self._client = client
        self._window_ms = max(1, int(window_seconds * 1000))

    async def first_in_window(self, sandbox_id: str) -> bool:
        return bool(
            await self._client.set(
                keys.activity_throttle(sandbox_id), b"1", nx=True, px=self._window_ms
            )
        )

    async def forget(self, sandbox_id: str) -> None:
        await self._client.delete(keys.activity_throttle(sandbox_id))


class _Markers:
    def __init__(self, client: aioredis.Redis, ttl_seconds: int, key: Callable[[str], str]) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._key = key

    async def remember(self, command_id: str) -> None:
        await self._client.set(self._key(command_id), b"1", ex=self._ttl)


class RequestedPauses:
    """Pause commands the ticker published, remembered for `ttl_seconds` (not asked again).
    One sorted set of command id -> until when: a tick's 10,000 cost one command to read and
    one to write, where a key each cost 10,000 replies to parse (a fifth of the tick)."""

    def __init__(
        self, client: aioredis.Redis, ttl_seconds: int, clock: Callable[[], float] = time.time
    ) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._clock = clock

    async def already(self, command_ids: Sequence[str]) -> set[str]:
        if not command_ids:
            return set()
        until: list[float | None] = await self._client.zmscore(
            keys.PAUSES_REQUESTED, list(command_ids)
        )
        now = self._clock()
        return {c for c, u in zip(command_ids, until, strict=True) if u is not None and u > now}

    async def remember_all(self, command_ids: Sequence[str]) -> None:
        if not command_ids:
            return
        now = self._clock()
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.zadd(keys.PAUSES_REQUESTED, dict.fromkeys(command_ids, now + self._ttl))
            pipe.zremrangebyscore(keys.PAUSES_REQUESTED, "-inf", now)  # the expired ones
            pipe.expire(keys.PAUSES_REQUESTED, self._ttl)
            await pipe.execute()


class CommandLedger(_Markers):
    """Commands the actuator carried out (E2B answered for good), remembered for
    `ACTUATOR_LEDGER_TTL_SECONDS` (a day): far beyond any redelivery. A command redelivered
    later still cannot do harm: a pause re-reads the sandbox's state before it acts."""

    def __init__(self, client: aioredis.Redis, ttl_seconds: int) -> None:
        super().__init__(client, ttl_seconds, keys.command_done)

    async def done(self, command_id: str) -> bool:
        return bool(await self._client.exists(self._key(command_id)))


# Spend within the budget, or nothing: the spend and the check in one step.
_SPEND = """
local spent = redis.call('INCRBY', KEYS[1], ARGV[1])
if spent > tonumber(ARGV[2]) then
  redis.call('DECRBY', KEYS[1], ARGV[1])
  return 0
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""
_SPENT_TTL_SECONDS = 2 * 86_400


class PrewarmBook:
    """When pre-warming last ran, and each project's spend per local day. Lost (a Redis
    restart), a run looks back one interval and the day's spend starts again from zero."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._spend = client.register_script(_SPEND)

    async def last_run(self) -> datetime | None:
        raw = await self._client.get(keys.PREWARM_LAST_RUN)
        return datetime.fromisoformat(text(raw)) if raw else None

    async def ran(self, at: datetime) -> None:
        await self._client.set(keys.PREWARM_LAST_RUN, at.isoformat(), ex=_SPENT_TTL_SECONDS)

    async def spend(self, project_id: str, day: str, seconds: int, budget_seconds: int) -> bool:
        """Whether `seconds` more fit in the day's budget (then they are counted)."""
        key = keys.prewarm_spent(project_id, day)
        return bool(
            await self._spend(keys=[key], args=[seconds, budget_seconds, _SPENT_TTL_SECONDS])
        )

    async def spent(self, project_id: str, day: str) -> int:
        raw = await self._client.get(keys.prewarm_spent(project_id, day))
        return int(text(raw)) if raw else 0
