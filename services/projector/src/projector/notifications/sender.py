"""POSTs to a project's receiver, after checking where its name resolves to now (a name that
passed at registration may point inside our networks later). httpx resolves it again when it
connects: a receiver's DNS that changes between the two can still slip past; an egress proxy or
network policy is the complete answer, and OPERATIONS says so."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import httpx

from sandbox_common.notifications import Reach, check_address, parse_destination


class RefusedDestinationError(RuntimeError):
    """The URL (or what its name resolves to now) is one notifications may not reach."""


class HttpSender:
    def __init__(self, reach: Reach, timeout_seconds: float) -> None:
        self._reach = reach
        # Redirects are not followed: one would lead anywhere, checks aside.
        self._client = httpx.AsyncClient(timeout=timeout_seconds, follow_redirects=False)

    async def post(self, url: str, headers: dict[str, str], body: bytes) -> int:
        await self.check(url)
        response = await self._client.post(url, headers=headers, content=body)
        return response.status_code

    async def check(self, url: str) -> None:
        try:
            destination = parse_destination(url, self._reach)
            infos = await asyncio.get_running_loop().getaddrinfo(
                destination.host, destination.port, type=socket.SOCK_STREAM
            )
            for *_, address in infos:
                check_address(ipaddress.ip_address(address[0]), self._reach)
        except (ValueError, OSError) as exc:
            raise RefusedDestinationError(str(exc)) from exc

    async def close(self) -> None:
        await self._client.aclose()
