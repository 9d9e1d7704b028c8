"""What a client costs the HTTP servers before it has proved anything: status-api answers a
POST without a valid token before reading its body, and caps bodies at a few KiB; ingest and
status-api cut off clients that send their headers or body too slowly (slow loris)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.connected.conftest import Stack
from tests.connected.e2b_sim_process import free_port
from tests.connected.helpers import token, unique
from tests.connected.services import ServiceProcess

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


@pytest.fixture(scope="module")
def strict(stack: Stack) -> Iterator[list[ServiceProcess]]:
    """ingest and status-api with one-second header and body deadlines."""
    services = []
    for name, var in (("ingest", "INGEST_PORT"), ("status-api", "STATUS_API_PORT")):
        port = free_port()
        env = {
            **stack.env,
            var: str(port),
            "HTTP_HEADER_TIMEOUT_SECONDS": "1",
            "HTTP_BODY_TIMEOUT_SECONDS": "1",
        }
        services.append(ServiceProcess(name, port, env, label=f"strict-{name}-{port}"))
    for service in services:
        service.start()
    try:
        yield services
    finally:
        for service in services:
            service.stop()


async def _slow_loris(port: int, head: bytes) -> tuple[float, bytes]:
    """Trickles `head` a byte every 0.1 s; how long until the server closed, and its answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    try:
        for byte in head:
            if reader.at_eof():
                break
            try:
                writer.write(bytes([byte]))
                await writer.drain()
            except ConnectionError:
                break  # closed by the server
            await asyncio.sleep(0.1)
        return time.monotonic() - started, await _rest(reader)
    finally:
        writer.close()


async def _rest(reader: asyncio.StreamReader) -> bytes:
    try:
        async with asyncio.timeout(10):
            return await reader.read()
    except ConnectionError:
        return b""


@pytest.mark.parametrize("service", ["ingest", "status-api"])
async def test_slow_clients_are_cut_off_while_others_are_served(
    strict: list[ServiceProcess], service: str
) -> None:
    server = next(s for s in strict if s.name == service)
    path = "/api/webhooks/e2b" if service == "ingest" else "/api/projects/p/sandbox/activity"
    # Headers a byte at a time, for ever (600 bytes would take a minute).
    loris = f"POST {path} HTTP/1.1\r\nHost: x\r\nX-Pad: {'a' * 600}\r\n".encode()
    # A body announced, never finished.
    stalled = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n".encode()
    slow = [asyncio.create_task(_slow_loris(server.port, loris)) for _ in range(20)]
    held = [asyncio.create_task(_stall(server.port, stalled)) for _ in range(20)]
    idle = [asyncio.create_task(_stall(server.port, b"")) for _ in range(20)]
    await asyncio.sleep(0.3)
    async with httpx.AsyncClient(timeout=2.0) as client:
        for _ in range(10):  # meanwhile everyone else is served at once
            started = time.monotonic()
            assert (await client.get(f"{server.url}/healthz")).status_code == 200
            assert time.monotonic() - started < 0.5
    for elapsed, answer in await asyncio.gather(*slow):
        assert elapsed < 3.0, elapsed  # cut off after ~1 s, not after 60 s of trickling
        assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer
    for elapsed, _ in await asyncio.gather(*held, *idle):
        assert elapsed < 3.0, elapsed


async def _stall(port: int, head: bytes) -> tuple[float, bytes]:
    """Sends `head`, then nothing: how long until the server closed, and what it said."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    try:
        writer.write(head + b"0123456789" if head else b"")
        await writer.drain()
        return time.monotonic() - started, await _rest(reader)
    finally:
        writer.close()
