"""A project's notification receiver (issue 17, item 5): taken only when its URL's host
resolves to addresses notifications may reach (NOTIFY_REACH); the projector checks again before
each delivery. Its secret is kept to sign with and never shown again."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sandbox_common.notification_outbox import Executes, enqueue_notices
from sandbox_common.notifications import (
    DestinationError,
    Notice,
    Reach,
    Target,
    TargetError,
    check_address,
    decode_target,
    parse_destination,
)
from status_api.adapters.notification_targets import StoredTarget

RESOLVE_TIMEOUT_SECONDS = 5.0

Resolve = Callable[[str, int], Awaitable[list[Any]]]


async def resolve(host: str, port: int) -> list[Any]:
    return await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)


class Store(Protocol):
    async def get(self, project_id: str) -> StoredTarget | None: ...

    async def put(self, project_id: str, target: Target, actor: str | None) -> StoredTarget: ...

    async def delete(self, project_id: str) -> bool: ...


@dataclass(frozen=True)
class Receivers:
    store: Store
    reach: Reach
    resolve: Resolve = resolve

    async def register(self, project_id: str, body: bytes, actor: str | None) -> StoredTarget:
        """TargetError (422) naming the field; the stored receiver otherwise."""
        target = decode_target(body, self.reach)
        await self.reachable(target.url)
        return await self.store.put(project_id, target, actor)

    async def reachable(self, url: str) -> None:
        destination = parse_destination(url, self.reach)
        try:
            async with asyncio.timeout(RESOLVE_TIMEOUT_SECONDS):
                infos = await self.resolve(destination.host, destination.port)
        except (OSError, TimeoutError) as exc:
            raise TargetError("url", f"{destination.host} does not resolve: {exc}") from None
        try:
            for *_, address in infos:
                check_address(ipaddress.ip_address(address[0]), self.reach)
        except DestinationError as exc:
            raise TargetError(
                "url", f"{destination.host} resolves where notifications may not go: {exc.reason}"
            ) from None


@dataclass(frozen=True)
class WarningNotices:
    """status-api's warnings into the notification outbox (its PostgreSQL pool)."""

    db: Executes

    async def enqueue(self, notices: Sequence[Notice]) -> None:
        await enqueue_notices(self.db, notices)
