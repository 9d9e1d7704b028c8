"""Reads of the status documents the projector maintains (never writes them)."""

from __future__ import annotations

import redis.asyncio as aioredis

from sandbox_common import keys
from sandbox_common.readmodel import StatusDoc, decode_doc


class ReadModelMissingError(RuntimeError):
    """Redis has lost the read model (its marker is gone) and the projector is rebuilding it
    from PostgreSQL: a miss means "not known yet", not "no such sandbox" (503, not 404)."""


class StatusReader:
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client

    async def by_sandbox(self, sandbox_id: str) -> StatusDoc | None:
        raw = await self._client.hget(keys.sandbox_doc(sandbox_id), keys.DOC_FIELD)
        if raw:
            return decode_doc(raw)
        await self._check_built()
        return None

    async def by_project(self, project_id: str) -> StatusDoc | None:
        sandbox_id = await self._client.get(keys.project_sandbox(project_id))
        if not sandbox_id:
            await self._check_built()
            return None
        return await self.by_sandbox(
            sandbox_id.decode() if isinstance(sandbox_id, bytes) else sandbox_id
        )

    async def _check_built(self) -> None:
        """Only misses pay for this check; hits never do."""
        if not await self._client.exists(keys.READ_MODEL_MARKER):
            raise ReadModelMissingError("the read model is being rebuilt; retry shortly")

    async def ping(self) -> bool:
        return bool(await self._client.ping())


class RedisThrottle:
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
