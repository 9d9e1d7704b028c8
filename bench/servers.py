"""Which HTTP server the services run under: uvicorn against granian, side by side.

An empty ASGI app (reads the body, answers `{}`) under each server, one worker, uvloop, driven by
bench/loadgen at fixed rates and closed loop; the figure that matters is the server's own CPU per
request, because on two cores everything the server spends is taken from Kafka, PostgreSQL and
the projector.

    uv run python -m bench.servers [seconds]
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import httpx

from bench.cpu import tree_seconds
from bench.loadgen import Report, Target, attack

PORT = int(os.environ.get("BENCH_SERVER_PORT", "18900"))
RATES = (1000, 3000, 0)  # 0: closed loop, 64 connections
_LAUNCH = {
    "uvicorn": (
        "import uvicorn; uvicorn.run('bench.servers:app', port={port}, loop='uvloop',"
        " http='httptools', ws='none', access_log=False, proxy_headers=False,"
        " log_level='warning')"
    ),
    "granian": (
        "from granian.server import Server; from granian.constants import Interfaces, Loops;"
        " Server('bench.servers:app', port={port}, interface=Interfaces.ASGI, loop=Loops.uvloop,"
        " workers=1, log_access=False).serve()"
    ),
}


async def app(
    scope: MutableMapping[str, Any],
    receive: Callable[[], Awaitable[MutableMapping[str, Any]]],
    send: Callable[[MutableMapping[str, Any]], Awaitable[None]],
) -> None:
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body", False):
        pass
    headers = [(b"content-type", b"application/json"), (b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"{}"})


@dataclass(frozen=True)
class ServerRun:
    server: str
    rate: int
    report: Report
    cpu_us_per_request: float

    def row(self) -> str:
        rate = f"{self.rate}/s" if self.rate else "closed loop"
        r = self.report
        return (
            f"| {self.server} | {rate} | {r.throughput:.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} |"
            f" {self.cpu_us_per_request:.0f} |"
        )


def _start(server: str) -> subprocess.Popen[bytes]:
    code = _LAUNCH[server].format(port=PORT)
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.post(f"http://127.0.0.1:{PORT}/", content=b"{}", timeout=1.0)
            return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{server} did not answer on port {PORT}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGINT (a clean shutdown), then SIGKILL: granian has been seen to outlive a SIGINT."""
    os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


def measure(seconds: float = 8.0) -> list[ServerRun]:
    body = json.dumps({"type": "sandbox.lifecycle.updated", "pad": "x" * 300}).encode()
    target = Target("POST", f"http://127.0.0.1:{PORT}/api/webhooks/e2b", {}, body)
    runs: list[ServerRun] = []
    for rate in RATES:
        for server in _LAUNCH:  # alternated per rate, so a noisy spell hits both
            proc = _start(server)
            try:
                attack([target], rate=500, seconds=1)  # warm-up
                before = tree_seconds(proc.pid)
                report = attack([target], rate=rate, seconds=seconds)
                used = tree_seconds(proc.pid) - before
            finally:
                _stop(proc)
            runs.append(ServerRun(server, rate, report, used / max(report.requests, 1) * 1e6))
    return runs


def table(runs: list[ServerRun]) -> str:
    head = [
        "| server | rate | ok/s | p50 ms | p99 ms | server CPU us/request |",
        "|---|---|---:|---:|---:|---:|",
    ]
    return "\n".join([*head, *(r.row() for r in runs)])


if __name__ == "__main__":
    print(table(measure(float(sys.argv[1]) if len(sys.argv) > 1 else 8.0)))
