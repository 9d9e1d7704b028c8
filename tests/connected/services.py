"""Runs our services as real subprocesses (their console entrypoints) for connected tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

LOG_DIR = Path(os.environ.get("STATE_DIR", Path(__file__).parents[2] / ".state")) / "logs" / "tests"

_ENTRYPOINTS = {
    "ingest": "from ingest.main import main; main()",
    "projector": "from projector.main import main; main()",
    "status-api": "from status_api.main import main; main()",
    "enforcer": "from enforcer.ticker.main import main; main()",
    "actuator": "from enforcer.actuator.main import main; main()",
}


class ServiceProcess:
    def __init__(self, name: str, port: int, env: dict[str, str], label: str = "") -> None:
        self.name = name
        self.port = port
        self.env = env
        self.label = label or name
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = LOG_DIR / f"{self.label}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, wait_ready: bool = True, timeout: float = 30.0) -> ServiceProcess:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _ENTRYPOINTS[self.name]],
            env={**os.environ, **self.env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a kill reaches server workers too
        )
        log.close()
        self.wait("/readyz" if wait_ready else "/healthz", timeout)
        return self

    def wait(self, path: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.label} exited ({self.proc.returncode}); see "
                    f"{self.log_path}:\n{self.tail()}"
                )
            try:
                r = httpx.get(self.url + path, timeout=1.0)
                if r.status_code == 200:
                    return
                last = r.text
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.1)
        raise TimeoutError(
            f"{self.label} not answering {path} in {timeout}s: {last}\n{self.tail()}"
        )

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""
