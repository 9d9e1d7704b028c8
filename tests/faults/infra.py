"""The fault suite's own Kafka, PostgreSQL and Redis: infra/local/*.sh with a separate state
folder and ports, so killing them never touches the instances other checkouts share.

Each is killed by the pid its script recorded (never by name), and restarted by its script.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra" / "local"
COMPONENTS = ("kafka", "postgres", "redis")


def _port(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


@dataclass(frozen=True)
class LocalInfra:
    state: Path = Path(os.environ.get("FAULTS_STATE_DIR", ROOT / ".state-faults"))
    kafka_port: int = _port("FAULTS_KAFKA_PORT", 19092)
    controller_port: int = _port("FAULTS_KAFKA_CONTROLLER_PORT", 19093)
    postgres_port: int = _port("FAULTS_POSTGRES_PORT", 15432)
    redis_port: int = _port("FAULTS_REDIS_PORT", 16379)

    @property
    def kafka(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def database_url(self) -> str:
        return f"postgresql://sandboxes:sandboxes@127.0.0.1:{self.postgres_port}/sandboxes"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "STATE_DIR": str(self.state),
            "KAFKA_PORT": str(self.kafka_port),
            "KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka,
            "POSTGRES_PORT": str(self.postgres_port),
            "REDIS_PORT": str(self.redis_port),
            # The broker always listens SASL_SSL too: off the shared broker's port.
            "KAFKA_SASL_SSL_PORT": os.environ.get("FAULTS_KAFKA_SASL_SSL_PORT", "19094"),
        }

    def script(self, name: str, *args: str) -> None:
        run = subprocess.run(
            [str(INFRA / f"{name}.sh"), *args],
            env=self._env(),
            capture_output=True,
            text=True,
            check=False,
        )
        if run.returncode != 0:
            raise RuntimeError(f"{name}.sh {' '.join(args)} failed:\n{run.stdout}\n{run.stderr}")

    def up(self) -> None:
        """Starts all three; Kafka on a fresh log dir: the topics hold this run's records only."""
        if self.pid("kafka") is not None:  # left by an interrupted run: ours, by its pid file
            self.script("kafka", "stop")
        shutil.rmtree(self.state / "data" / "kafka", ignore_errors=True)
        (self.state / "kafka" / "cluster.id").unlink(missing_ok=True)
        self.script("up")

    def down(self) -> None:
        self.script("down")

    def start(self, component: str) -> None:
        self.script(component, "start")

    def pid(self, component: str) -> int | None:
        try:
            pid = int((self.state / "run" / f"{component}.pid").read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None
        return pid if _alive(pid) else None

    def kill(self, component: str) -> None:
        """kill -9, as a crash would: PostgreSQL's postmaster together with its backends."""
        pid = self.pid(component)
        assert pid is not None, f"{component} is not running"
        victims = [pid, *_children(pid)] if component == "postgres" else [pid]
        for victim in victims:
            os.kill(victim, signal.SIGKILL)
        # Gone means reaped too: a zombie still holds its pid, and PostgreSQL's lock file check
        # (kill 0) would take it for a running postmaster.
        deadline = time.monotonic() + 30
        while any(Path(f"/proc/{v}").exists() for v in victims):
            assert time.monotonic() < deadline, f"{component} pids {victims} not reaped in 30 s"
            time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found
