"""Reads of the status documents the projector maintains (never writes them)."""

from __future__ import annotations

import redis.asyncio as aioredis

from sandbox_common import keys
from sandbox_common.readmodel import StatusDoc, decode_doc


class StatusReader:
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client

    async def by_sandbox(self, sandbox_id: str) -> StatusDoc | None:
        raw = await self._client.hget(keys.sandbox_doc(sandbox_id), keys.DOC_FIELD)
        return decode_doc(raw) if raw else None

    async def by_project(self, project_id: str) -> StatusDoc | None:
        sandbox_id = await self._client.get(keys.project_sandbox(project_id))
        if not sandbox_id:
            return None
        return await self.by_sandbox(
            sandbox_id.decode() if isinstance(sandbox_id, bytes) else sandbox_id
        )

    async def ping(self) -> bool:
        return bool(await self._client.ping())
