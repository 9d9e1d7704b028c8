"""Single-use tickets in Redis: a payload under an unguessable name, taken once (GETDEL), gone
after its TTL. Redis rather than a process's memory: the ticket is minted on one replica and
used on another. status-api's stream tickets are the user."""

from __future__ import annotations

import secrets
from typing import Any

import redis.asyncio as aioredis

from sandbox_common.readmodel import keys


class SingleUseTickets:
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client

    async def issue(self, payload: bytes, ttl_seconds: int) -> str:
        ticket = secrets.token_urlsafe(32)
        await self._client.set(keys.stream_ticket(ticket), payload, ex=ttl_seconds)
        return ticket

    async def redeem(self, ticket: str) -> bytes | None:
        """The payload of a ticket not used before and not expired (used up now), else None."""
        raw: Any = await self._client.getdel(keys.stream_ticket(ticket))
        return bytes(raw) if raw else None
