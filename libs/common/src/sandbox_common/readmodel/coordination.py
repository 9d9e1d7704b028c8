"""Short-lived Redis keys beside the read model, with the rules that go with them: leases (one
ticking enforcer, one reconciling one), heartbeat throttling, and markers of work already done
(a pause requested, a command carried out). Losing any of them costs a repeat, never a wrong
state: each is backed by a deterministic id or a revision guard elsewhere."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import redis.asyncio as aioredis

from sandbox_common.readmodel import keys
from sandbox_common.readmodel.redis_text import text

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


class RequestedPauses(_Markers):
    """Pause commands the ticker published, remembered for a while (not asked again)."""

    def __init__(self, client: aioredis.Redis, ttl_seconds: int) -> None:
        super().__init__(client, ttl_seconds, keys.pause_requested)

    async def already(self, command_ids: Sequence[str]) -> set[str]:
        found = await self._client.mget([self._key(c) for c in command_ids])
        return {c for c, hit in zip(command_ids, found, strict=True) if hit is not None}


class CommandLedger(_Markers):
    """Commands the actuator carried out (E2B answered for good), remembered for a week: far
    beyond any redelivery."""

    def __init__(self, client: aioredis.Redis, ttl_seconds: int = 7 * 24 * 3600) -> None:
        super().__init__(client, ttl_seconds, keys.command_done)

    async def done(self, command_id: str) -> bool:
        return bool(await self._client.exists(self._key(command_id)))
