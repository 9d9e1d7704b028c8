"""A redis-server of a test's own (the distro's binary, a free port, no persistence): for tests
that change server-wide settings (maxmemory, replication) the shared instance must keep."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import tempfile
from collections.abc import AsyncIterator

import redis.asyncio as aioredis


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def own_redis(*extra: str) -> AsyncIterator[str]:
    """Yields the server's URL; the server is killed and its directory removed afterwards."""
    binary = shutil.which("redis-server")
    assert binary, "redis-server not installed (infra/local/redis.sh installs it)"
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="own-redis-") as workdir:
        command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", workdir]
        command += ["--save", "", "--appendonly", "no", *extra]
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # noqa: ASYNC220
        url = f"redis://127.0.0.1:{port}/0"
        try:
            client = aioredis.Redis.from_url(url)
            try:
                for _ in range(100):
                    with contextlib.suppress(OSError, aioredis.ConnectionError):
                        if await client.ping():
                            break
                    await asyncio.sleep(0.05)
                else:
                    raise RuntimeError(f"redis-server on port {port} did not answer PING")
            finally:
                await client.aclose()
            yield url
        finally:
            proc.kill()
            proc.wait(timeout=10)
