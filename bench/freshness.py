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

import httpx

from bench.webhooks import WEBHOOK_PATH, Connection, build_request, signed_webhook
from sandbox_common.settings import load
from sandboxctl.settings import Settings
from status_api.auth import Claims, mint

_CONNECTIONS = 32


def _request(settings: Settings, sandbox: str) -> tuple[str, bytes]:
    body, headers = signed_webhook(settings, "sandbox.lifecycle.created", sandbox, f"{sandbox}-p")
    return sandbox, build_request("127.0.0.1", settings.ingest_port, WEBHOOK_PATH, headers, body)


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
        Claims(projects=[], admin=True, ttl_seconds=3600, now=int(time.time())),
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
            conn = Connection("127.0.0.1", settings.ingest_port)
            try:
                while not queue.empty():
                    i = queue.get_nowait()
                    delay = began + i / rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    sandbox, raw = requests[i]
                    if await conn.request(raw) < 300:
                        acked[sandbox] = time.monotonic()
            finally:
                conn.close()

        await asyncio.gather(*(connection() for _ in range(_CONNECTIONS)))
        await asyncio.sleep(3)
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
    latencies = [(seen[s] - at) * 1000 for s, at in acked.items() if s in seen]
    return Freshness(rate, total, len(acked), latencies, [s for s, _ in requests])


if __name__ == "__main__":
    found = asyncio.run(
        measure(
            load(Settings),
            int(sys.argv[1]) if len(sys.argv) > 1 else 1000,
            float(sys.argv[2]) if len(sys.argv) > 2 else 20.0,
        )
    )
    print(found.line())
