"""Held server-sent event streams: 1,000 clients on status-api at once, the memory each costs,
and how fast a change reaches them (webhook answered 2xx -> event at the client).

Run by bench/run_all.py against the stack `make up` started, on sandboxes it seeded.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from bench.webhooks import signed_webhook
from sandbox_common.settings import load
from sandboxctl.settings import Settings
from status_api.auth import Claims, mint


def tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process and its descendants (a server may run the app in a child)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        parents[int(entry.name)] = int(fields["PPid"])
        rss[int(entry.name)] = int(fields.get("VmRSS", "0 kB").split()[0]) * 1024
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        total += rss.get(current, 0)
        todo.extend(p for p, parent in parents.items() if parent == current)
    return total


@dataclass
class SseResult:
    clients: int
    connected_s: float
    rss_before: int
    rss_after: int
    latencies_ms: list[float]
    changes: int

    def lines(self) -> list[str]:
        per_client = (self.rss_after - self.rss_before) / self.clients
        lat = sorted(self.latencies_ms)
        p99 = lat[int(len(lat) * 0.99) - 1] if lat else float("nan")
        return [
            f"{self.clients:,} concurrent streams held, all of them given the current state "
            f"within {self.connected_s:.1f} s of opening",
            f"status-api resident memory {self.rss_before / 2**20:.0f} MiB before, "
            f"{self.rss_after / 2**20:.0f} MiB with the streams open: "
            f"**{per_client / 1024:.1f} KiB per client**",
            f"{self.changes} changes (webhooks at 50/s, each for a sandbox with a client "
            f"listening): {len(lat)} delivered; webhook 2xx -> event at the client "
            f"p50 {statistics.median(lat):.1f} ms, p99 {p99:.1f} ms, max {lat[-1]:.1f} ms"
            if lat
            else "no change delivered",
        ]


async def measure(
    settings: Settings, projects: list[str], status_api_pid: int, changes: int = 200
) -> SseResult:
    base = f"http://127.0.0.1:{settings.status_api_port}"
    now = int(time.time())
    arrived: dict[str, float] = {}
    ready: set[str] = set()
    all_ready = asyncio.Event()

    async def client(http: httpx.AsyncClient, project: str) -> None:
        jwt = mint(
            settings.status_api_jwt_secret,
            Claims(projects=[project], admin=False, ttl_seconds=3600, now=now),
        )
        url = f"{base}/api/projects/{project}/sandbox/stream"
        async with http.stream("GET", url, headers={"Authorization": f"Bearer {jwt}"}) as r:
            r.raise_for_status()
            async for line in r.aiter_lines():
                if not line.startswith("data:"):
                    continue
                if project not in ready:
                    ready.add(project)
                    if len(ready) == len(projects):
                        all_ready.set()
                elif '"status":"PAUSED"' in line:
                    arrived.setdefault(project, time.monotonic())

    rss_before = tree_rss_bytes(status_api_pid)
    limits = httpx.Limits(max_connections=len(projects) + 10)
    # No read timeout: a held stream is quiet between keep-alives by design.
    timeout = httpx.Timeout(10.0, read=None)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as http:
        started = time.monotonic()
        tasks = [asyncio.create_task(client(http, p)) for p in projects]
        await asyncio.wait_for(all_ready.wait(), 120)
        connected_s = time.monotonic() - started
        await asyncio.sleep(2)
        rss_after = tree_rss_bytes(status_api_pid)
        acked = await _pause_some(settings, projects[:changes])
        await asyncio.sleep(3)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    latencies = [(arrived[p] - at) * 1000 for p, at in acked.items() if p in arrived]
    return SseResult(len(projects), connected_s, rss_before, rss_after, latencies, len(acked))


async def _pause_some(settings: Settings, projects: list[str]) -> dict[str, float]:
    """Signed `paused` webhooks through ingest at 50/s; when each was answered 2xx."""
    url = f"http://127.0.0.1:{settings.ingest_port}/api/webhooks/e2b"
    acked: dict[str, float] = {}
    async with httpx.AsyncClient(timeout=10) as http:
        for project in projects:
            body, headers = signed_webhook(
                settings, "sandbox.lifecycle.paused", f"sbx-{project}", project
            )
            r = await http.post(url, content=body, headers=headers)
            if r.status_code < 300:
                acked[project] = time.monotonic()
            await asyncio.sleep(0.02)
    return acked


def status_api_pid(run_dir: Path) -> int:
    return int((run_dir / "status-api.pid").read_text().split()[0])


if __name__ == "__main__":  # a quick look on its own: python -m bench.sse_clients
    from bench.run_all import RUN_DIR, seed_sandboxes

    s = load(Settings)
    found = asyncio.run(measure(s, seed_sandboxes(s, 1000), status_api_pid(RUN_DIR)))
    print("\n".join(found.lines()))
