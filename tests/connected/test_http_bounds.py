"""What a client costs the HTTP servers before it has proved anything: status-api answers a
POST without a valid token before reading its body, and caps bodies at a few KiB."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.connected.conftest import Stack
from tests.connected.helpers import token, unique

pytestmark = pytest.mark.connected


async def _raw(port: int, head: bytes, within: float) -> bytes:
    """Sends `head` (and nothing more), then reads the answer of the next `within` seconds."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        await writer.drain()
        async with asyncio.timeout(within):
            return await reader.readuntil(b"\r\n\r\n")
    finally:
        writer.close()


async def test_a_post_without_a_valid_token_is_refused_before_its_body_is_read(
    stack: Stack,
) -> None:
    for authorization in (b"", b"Authorization: Bearer forged\r\n"):
        head = (
            (
                f"POST /api/projects/{unique('proj')}/sandbox/activity HTTP/1.1\r\n"
                "Host: x\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n"
            ).encode()
            + authorization
            + b"\r\n"
            + b"{" * 1024
        )
        # 10 MB announced, 1 KiB sent: the answer comes without the rest.
        answer = await _raw(stack.status_api.port, head, within=3.0)
        assert answer.startswith(b"HTTP/1.1 401"), answer


async def test_a_body_over_a_few_kib_is_413_even_with_a_valid_token(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    project = unique("proj")
    url = f"{stack.status_api.url}/api/projects/{project}/sandbox/activity"
    big = b'{"source": "ui", "pad": "' + b"x" * 20_000 + b'"}'
    r = await client.post(
        url, content=big, headers={**token(stack, project), "content-type": "application/json"}
    )
    assert r.status_code == 413
    small = await client.post(url, json={"source": "ui"}, headers=token(stack, project))
    assert small.status_code == 404  # within the cap: on to the route (no sandbox there)
