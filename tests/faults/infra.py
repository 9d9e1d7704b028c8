"""The fault suite's own Kafka, PostgreSQL and Redis: infra/local/*.sh with a separate state
folder and ports, so killing them never touches the instances other checkouts share.

Each is killed by the pid its script recorded (never by name), and restarted by its script.
Kafka is one node, or three (FAULTS_KAFKA_BROKERS=3): then "kafka" is all of them, and each
node can be killed alone by its name ("kafka-node-2"); `start("kafka")` starts whichever is down.
Redis is one server, or a three-master Redis Cluster when REDIS_CLUSTER=true (the switch the
connected tier's `redis_mode` and the services read too).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.connected import redis_mode

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra" / "local"
COMPONENTS = ("kafka", "postgres", "redis")
NODE_PORT_STEP = 100  # infra/local/kafka_nodes.sh: node I listens on each base port + (I-1)*100


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


@dataclass(frozen=True)
class LocalInfra:
    state: Path = Path(os.environ.get("FAULTS_STATE_DIR", ROOT / ".state-faults"))
    kafka_port: int = _int("FAULTS_KAFKA_PORT", 19092)
    controller_port: int = _int("FAULTS_KAFKA_CONTROLLER_PORT", 19093)
    postgres_port: int = _int("FAULTS_POSTGRES_PORT", 15432)
    redis_port: int = _int("FAULTS_REDIS_PORT", 16379)
    brokers: int = _int("FAULTS_KAFKA_BROKERS", 1)
    redis_cluster: bool = redis_mode.CLUSTER
    # Off the ports of `make up`'s cluster (7001-7003) and the connected tier's (7011-7023).
    redis_cluster_ports: tuple[int, ...] = tuple(
        int(p) for p in os.environ.get("FAULTS_REDIS_CLUSTER_PORTS", "17031 17032 17033").split()
    )

    @property
    def kafka(self) -> str:
        ports = (self.kafka_port + i * NODE_PORT_STEP for i in range(self.brokers))
        return ",".join(f"127.0.0.1:{port}" for port in ports)

    @property
    def kafka_nodes(self) -> list[str]:
        """Each Kafka node's name: the stem of its pid file and data dir."""
        if self.brokers == 1:
            return ["kafka"]
        return [f"kafka-node-{i}" for i in range(1, self.brokers + 1)]

    @property
    def database_url(self) -> str:
        return f"postgresql://sandboxes:sandboxes@127.0.0.1:{self.postgres_port}/sandboxes"

    @property
    def redis_url(self) -> str:
        port = self.redis_cluster_ports[0] if self.redis_cluster else self.redis_port
        return f"redis://127.0.0.1:{port}/0"

    @property
    def logs(self) -> Path:
        return self.state / "logs"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "STATE_DIR": str(self.state),
            "KAFKA_PORT": str(self.kafka_port),
            "KAFKA_CONTROLLER_PORT": str(self.controller_port),
            "KAFKA_BROKERS": str(self.brokers),
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka,
            "POSTGRES_PORT": str(self.postgres_port),
            "REDIS_PORT": str(self.redis_port),
            "REDIS_MODE": "cluster" if self.redis_cluster else "standalone",
            "REDIS_CLUSTER_PORTS": " ".join(map(str, self.redis_cluster_ports)),
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
        # Left by an interrupted run, of either size: ours, stopped by its pid files.
        self.script("kafka", "stop")
        for data in (self.state / "data").glob("kafka*"):
            shutil.rmtree(data, ignore_errors=True)
        (self.state / "kafka" / "cluster.id").unlink(missing_ok=True)
        self.script("up")

    def down(self) -> None:
        self.script("down")

    def start(self, component: str) -> None:
        self.script(component, "start")

    def pid(self, name: str) -> int | None:
        try:
            pid = int((self.state / "run" / f"{name}.pid").read_text().split()[0])
        except (FileNotFoundError, ValueError, IndexError):
            return None
        return pid if _alive(pid) else None

    def pids(self, component: str) -> list[int]:
        """The live processes of a component, or of one Kafka node given by its name."""
        names = self.kafka_nodes if component == "kafka" else [component]
        return [pid for name in names if (pid := self.pid(name)) is not None]

    def quorum_leader(self, within: float = 15) -> str:
        """The Kafka node that leads the controller quorum now, as every live voter records it
        (in its quorum-state file); waits out an election in progress."""
        deadline = time.monotonic() + within
        while True:
            leaders: set[int] = set()
            for name in self.kafka_nodes:
                state = self.state / "data" / name / "__cluster_metadata-0" / "quorum-state"
                if self.pid(name) is not None and state.exists():
                    leaders.add(int(json.loads(state.read_text())["leaderId"]))
            if len(leaders) == 1 and (leader := leaders.pop()) > 0:
                return self.kafka_nodes[leader - 1]
            assert time.monotonic() < deadline, f"the live voters name leaders {leaders}"
            time.sleep(0.2)

    def kill(self, *components: str) -> None:
        """kill -9, as a crash would, of all given at once: PostgreSQL's postmaster together
        with its backends, every Kafka node for "kafka" (or one node by its name)."""
        victims = []
        for component in components:
            pids = self.pids(component)
            assert pids, f"{component} is not running"
            victims += [*pids, *_children(pids[0])] if component == "postgres" else pids
        for victim in victims:
            os.kill(victim, signal.SIGKILL)
        # Gone means reaped too: a zombie still holds its pid, and PostgreSQL's lock file check
        # (kill 0) would take it for a running postmaster.
        deadline = time.monotonic() + 30
        while any(Path(f"/proc/{v}").exists() for v in victims):
            assert time.monotonic() < deadline, f"{components} pids {victims} not reaped in 30 s"
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
