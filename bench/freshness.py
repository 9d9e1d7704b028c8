"""End-to-end freshness: a webhook answered 2xx by ingest -> the change visible in status-api.

Signed `created` webhooks (each a new sandbox) go to ingest at a fixed rate; one admin client
follows status-api's fleet stream (server-sent events, pushed as the projector writes Redis).
Freshness is the time from each webhook's 2xx to its sandbox's first event on the stream:
verify, publish (acks=all), consume, fold into PostgreSQL, write Redis, push.

    source .state/env.sh && uv run python -m bench.freshness [rate] [seconds]
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx

from sandbox_common import e2b
from sandbox_common.settings import Settings
from status_api.auth import mint

_CONNECTIONS = 32


def _request(settings: Settings, sandbox: str) -> tuple[str, bytes]:
    body = json.dumps(
        e2b.build_webhook(
            event_id=str(uuid.uuid4()),
            event_type="sandbox.lifecycle.created",
            sandbox_id=sandbox,
            timestamp=datetime.now(UTC),
            metadata={settings.project_metadata_key: f"{sandbox}-p"},
        )
    ).encode()
    headers = e2b.signed_headers(settings.e2b_webhook_secret, body)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    raw = (
        "POST /api/webhooks/e2b HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{head}\r\n"
    ).encode() + body
    return sandbox, raw


async def _status(reader: asyncio.StreamReader) -> int:
    """Reads one response; returns its status code."""
    status = int((await reader.readline()).split()[1])
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    await reader.readexactly(length)
    return status


@dataclass
class Freshness:
    rate: int
    sent: int
    acked: int
    latencies_ms: list[float]
    sandbox_ids: list[str]

    def line(self) -> str:
        lat = sorted(self.latencies_ms)
        if not lat:
            return f"freshness at {self.rate}/s: nothing arrived"
        p99 = lat[max(0, int(len(lat) * 0.99) - 1)]
        return (
            f"freshness at {self.rate:,} webhooks/s: {self.acked:,} of {self.sent:,} answered "
            f"2xx, {len(lat):,} seen on the stream; 2xx -> visible p50 "
            f"{statistics.median(lat):.1f} ms, p99 {p99:.1f} ms, max {lat[-1]:.1f} ms"
        )


async def measure(settings: Settings, rate: int = 1000, seconds: float = 20.0) -> Freshness:
    run = uuid.uuid4().hex[:6]
    acked: dict[str, float] = {}
    seen: dict[str, float] = {}
    admin = mint(
        settings.status_api_jwt_secret,
        projects=[],
        admin=True,
        ttl_seconds=3600,
        now=int(time.time()),
    )
    listening = asyncio.Event()

    async def follow(http: httpx.AsyncClient) -> None:
        url = f"http://127.0.0.1:{settings.status_api_port}/api/sandboxes/stream"
        async with http.stream("GET", url, headers={"Authorization": f"Bearer {admin}"}) as r:
            r.raise_for_status()
            listening.set()
            async for line in r.aiter_lines():
                if line.startswith("data:") and f"fresh-{run}-" in line:
                    sandbox = json.loads(line[5:])["sandboxId"]
                    seen.setdefault(sandbox, time.monotonic())

    total = int(rate * seconds)
    requests = [_request(settings, f"fresh-{run}-{i}") for i in range(total)]
    timeout = httpx.Timeout(10.0, read=None)
    async with httpx.AsyncClient(timeout=timeout) as http:
        follower = asyncio.create_task(follow(http))
        await asyncio.wait_for(listening.wait(), 10)
        began = time.monotonic() + 0.1
        queue: asyncio.Queue[int] = asyncio.Queue()
        for i in range(total):
            queue.put_nowait(i)

        async def connection() -> None:
            # A raw HTTP/1.1 keep-alive connection: httpx costs about a millisecond of CPU per
            # request, more than this process can spend at 1,000/s next to the system.
            reader, writer = await asyncio.open_connection("127.0.0.1", settings.ingest_port)
            try:
                while not queue.empty():
                    i = queue.get_nowait()
                    delay = began + i / rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    sandbox, raw = requests[i]
                    writer.write(raw)
                    if await _status(reader) < 300:
                        acked[sandbox] = time.monotonic()
            finally:
                writer.close()

        await asyncio.gather(*(connection() for _ in range(_CONNECTIONS)))
        await asyncio.sleep(3)
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
    latencies = [(seen[s] - at) * 1000 for s, at in acked.items() if s in seen]
    return Freshness(rate, total, len(acked), latencies, [s for s, _ in requests])


if __name__ == "__main__":
    found = asyncio.run(
        measure(
            Settings.from_env(),
            int(sys.argv[1]) if len(sys.argv) > 1 else 1000,
            float(sys.argv[2]) if len(sys.argv) > 2 else 20.0,
        )
    )
    print(found.line())
