"""The E2B simulator as a real subprocess, and a tiny webhook receiver, for connected tests.

Neither needs Kafka, PostgreSQL or Redis; the enforcer's tests can reuse both.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvicorn
from litestar.enums import ScopeType
from litestar.types import Receive, Scope, Send

LOG_DIR = Path(os.environ.get("STATE_DIR", Path(__file__).parents[2] / ".state")) / "logs" / "tests"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def ticking(key: str) -> dict[str, str]:
    """A simulator whose clock moves on its own, fast (what most tests want)."""
    return {"E2B_SIM_API_KEY": key, "E2B_SIM_TICK_SECONDS": "0.05"}


def short_lived(key: str, max_seconds: int) -> dict[str, str]:
    """A simulator whose runs live at most `max_seconds` and whose clock only moves on
    POST /_sim/tick, so a run can be seen past its maximum length before the clock ends it (as
    in E2B between the limit and its expiry sweep)."""
    return {
        "E2B_SIM_API_KEY": key,
        "E2B_SIM_MAX_INSTANCE_SECONDS": str(max_seconds),
        "E2B_SIM_TICK_SECONDS": "3600",
    }


def running(env: dict[str, str]) -> Iterator[SimProcess]:
    """For fixtures (`yield from running(...)`): a started simulator, stopped afterwards."""
    process = SimProcess(env).start()
    try:
        yield process
    finally:
        process.stop()


class SimProcess:
    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.env = {**env, "E2B_SIM_HOST": "127.0.0.1", "E2B_SIM_PORT": str(self.port)}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = LOG_DIR / "e2b-sim.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> SimProcess:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "from e2b_sim.main import main; main()"],
                env={**os.environ, **self.env},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: the stop reaches any worker process too
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"e2b-sim exited ({self.proc.returncode}); see {self.log_path}")
            try:
                if httpx.get(self.url + "/healthz", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"e2b-sim not answering in {timeout}s; see {self.log_path}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)


@dataclass(frozen=True)
class Received:
    headers: dict[str, str]
    body: bytes
    at: float  # time.monotonic()


@dataclass
class Receiver:
    """Records every POST; answers the next statuses in `script`, then 200."""

    received: list[Received] = field(default_factory=list)
    script: list[int] = field(default_factory=list)
    port: int = 0
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def clear(self) -> None:
        self.received.clear()
        self.script.clear()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message["body"])
            if not message.get("more_body", False):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.received.append(Received(headers, b"".join(chunks), time.monotonic()))
        status = self.script.pop(0) if self.script else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def start(self) -> Receiver:
        config = uvicorn.Config(self, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        for _ in range(1000):  # up to 10 s
            if self._server.started:
                break
            await asyncio.sleep(0.01)
        assert self._server.started, "webhook receiver did not start"
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
