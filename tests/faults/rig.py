"""The whole system as processes on the suite's own infrastructure, plus the E2B simulator,
sandboxes that must never be paused (kept busy by heartbeats) and helpers to kill and restart
any part of it. One process of each service, or several (the scale test): a service's first
process is named for the service ("projector"), the others get a number ("projector-2")."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

import httpx

from sandbox_common import e2b
from status_api.auth import Claims, mint
from tests.connected.conftest import reset_stores
from tests.connected.e2b_sim_process import SimProcess, free_port
from tests.connected.services import ServiceProcess
from tests.faults.infra import COMPONENTS, LocalInfra

SIM_KEY = "faults-sim-key"
# Default idle timeout of the stack: the load's sandboxes never come due during a run.
IDLE_TIMEOUT_SECONDS = 3600
# Sandboxes under heartbeats: longer than any outage the suite injects (a heartbeat cannot be
# recorded while Kafka is down), far shorter than the run.
ACTIVE_IDLE_SECONDS = 90
HEARTBEAT_SECONDS = 2.0
SERVICES = ("projector", "ingest", "status-api", "enforcer", "actuator")
# What each scenario kills; "enforcer" takes its actuator down with it.
TARGETS = ("ingest", "projector", "enforcer", *COMPONENTS)


@dataclass
class Heartbeats:
    """A user on each active sandbox: POST /activity every HEARTBEAT_SECONDS, to each
    status-api process in turn when there are several (as a load balancer would)."""

    rig: Rig
    codes: Counter[str] = field(default_factory=Counter)
    running: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        self.running.set()
        apis = itertools.cycle(self.rig.urls("status-api"))
        while True:
            await self.running.wait()
            for project in self.rig.active:
                try:
                    r = await self.rig.http.post(
                        f"{next(apis)}/api/projects/{project}/sandbox/activity",
                        headers=self.rig.token(project),
                        timeout=5.0,
                    )
                    self.codes[str(r.status_code)] += 1
                except httpx.HTTPError as exc:
                    self.codes[exc.__class__.__name__] += 1
            await asyncio.sleep(HEARTBEAT_SECONDS)


@dataclass
class Rig:
    infra: LocalInfra
    env: dict[str, str]
    sim: SimProcess
    services: dict[str, ServiceProcess]
    webhook_secret: str
    jwt_secret: str
    http: httpx.AsyncClient
    active: dict[str, str] = field(default_factory=dict)  # project -> sandbox id
    heartbeats: Heartbeats | None = None

    def url(self, service: str) -> str:
        return self.services[service].url

    def replicas(self, service: str) -> list[ServiceProcess]:
        """Every process of a service, its first one first."""
        return [p for name, p in self.services.items() if replica_of(name) == service]

    def urls(self, service: str) -> list[str]:
        return [p.url for p in self.replicas(service)]

    def token(self, *projects: str) -> dict[str, str]:
        jwt = mint(
            self.jwt_secret,
            Claims(projects=list(projects), admin=False, ttl_seconds=3600, now=int(time.time())),
        )
        return {"Authorization": f"Bearer {jwt}"}

    def admin_token(self) -> dict[str, str]:
        jwt = mint(
            self.jwt_secret, Claims(projects=[], admin=True, ttl_seconds=3600, now=int(time.time()))
        )
        return {"Authorization": f"Bearer {jwt}"}

    def sim_api(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.sim.url, headers={"X-API-Key": SIM_KEY}, timeout=10)

    async def create_sandbox(self, project: str, idle_seconds: int) -> str:
        """A sandbox in the simulator; its `created` webhook reaches us through ingest."""
        async with self.sim_api() as api:
            r = await api.post(
                "/sandboxes",
                json={
                    "templateID": "base",
                    "timeout": 3 * IDLE_TIMEOUT_SECONDS,
                    "metadata": {"projectId": project, "idleTimeoutSeconds": str(idle_seconds)},
                },
            )
        assert r.status_code == 201, r.text
        sandbox_id: str = r.json()["sandboxID"]
        return sandbox_id

    async def kill(self, target: str) -> None:
        if target in COMPONENTS:
            await asyncio.to_thread(self.infra.kill, target)
            return
        names = ("enforcer", "actuator") if target == "enforcer" else (target,)
        await asyncio.gather(*(asyncio.to_thread(self.services[n].kill) for n in names))

    async def restart(self, target: str) -> None:
        if target in COMPONENTS:
            await asyncio.to_thread(self.infra.start, target)
            return
        names = ("enforcer", "actuator") if target == "enforcer" else (target,)
        # Up, not necessarily ready: readiness is what the scenario measures next.
        await asyncio.gather(
            *(asyncio.to_thread(self.services[n].start, wait_ready=False) for n in names)
        )

    async def unready(self) -> list[str]:
        """The services whose /readyz does not answer 200 now."""

        async def ready(name: str) -> bool:
            with contextlib.suppress(httpx.HTTPError):
                r = await self.http.get(f"{self.url(name)}/readyz", timeout=2.0)
                return r.status_code == 200
            return False

        answers = await asyncio.gather(*(ready(n) for n in self.services))
        return [n for n, ok in zip(self.services, answers, strict=True) if not ok]


def service_env(
    infra: LocalInfra, sim: SimProcess, webhook_secret: str, jwt_secret: str
) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka,
        "DATABASE_URL": infra.database_url,
        "REDIS_URL": infra.redis_url,
        "REDIS_CLUSTER": "true" if infra.redis_cluster else "false",
        "E2B_WEBHOOK_SECRET": webhook_secret,
        "STATUS_API_JWT_SECRET": jwt_secret,
        "E2B_API_URL": sim.url,
        "E2B_API_KEY": SIM_KEY,
        "IDLE_TIMEOUT_SECONDS": str(IDLE_TIMEOUT_SECONDS),
        "ENFORCER_SCHEDULE": "1s",
        "ENFORCER_LEASE_SECONDS": "5",
        "ACTUATOR_BACKOFF_BASE_SECONDS": "0.2",
        "ACTUATOR_BACKOFF_CAP_SECONDS": "1",
        "STATUS_API_RATE_LIMIT_PER_SECOND": "0",
        "LOG_LEVEL": "WARNING",
    }


def replica_of(name: str) -> str:
    """The service a process name belongs to: "projector-2" -> "projector"."""
    base, _, number = name.rpartition("-")
    return base if number.isdigit() else name


def build_services(
    env: dict[str, str], infra: LocalInfra, replicas: Mapping[str, int] | None = None
) -> dict[str, ServiceProcess]:
    """`replicas` processes of each service (one unless given)."""
    services = {}
    for service in SERVICES:
        for i in range(1, (replicas or {}).get(service, 1) + 1):
            name = service if i == 1 else f"{service}-{i}"
            port = free_port()
            var = f"{service.upper().replace('-', '_')}_PORT"
            process = ServiceProcess(service, port, {**env, var: str(port)}, label=f"faults-{name}")
            process.log_path = infra.logs / "services" / f"{name}.log"
            services[name] = process
    return services


@contextlib.asynccontextmanager
async def open_rig(
    infra: LocalInfra, active: int, replicas: Mapping[str, int] | None = None
) -> AsyncIterator[Rig]:
    """The system on empty stores, with `active` sandboxes kept busy by heartbeats; stopped on
    leaving."""
    await reset_stores(infra.database_url, infra.redis_url)
    webhook_secret, jwt_secret = new_secrets()
    # E2B retries a failed delivery a few times; here often enough to outlast a broker restart.
    sim = SimProcess(
        {
            "E2B_SIM_API_KEY": SIM_KEY,
            "E2B_SIM_WEBHOOK_RETRIES": "15",
            "E2B_SIM_WEBHOOK_RETRY_DELAY_SECONDS": "3",
        }
    )
    sim.log_path = infra.logs / "services" / "e2b-sim.log"
    sim.log_path.parent.mkdir(parents=True, exist_ok=True)
    sim.start()
    env = service_env(infra, sim, webhook_secret, jwt_secret)
    services = build_services(env, infra, replicas)
    http = httpx.AsyncClient(timeout=10.0)
    rig = Rig(infra, env, sim, services, webhook_secret, jwt_secret, http)
    heartbeat_task: asyncio.Task[None] | None = None
    try:
        await asyncio.gather(*(asyncio.to_thread(s.start) for s in services.values()))
        await register_webhook(rig)
        for i in range(active):
            project = f"active-{uuid.uuid4().hex[:8]}-{i}"
            rig.active[project] = await rig.create_sandbox(project, ACTIVE_IDLE_SECONDS)
        rig.heartbeats = Heartbeats(rig)
        heartbeat_task = asyncio.create_task(rig.heartbeats.run())
        yield rig
    finally:
        if heartbeat_task is not None:
            heartbeat_task.cancel()
            await asyncio.gather(heartbeat_task, return_exceptions=True)
        await http.aclose()
        for s in services.values():
            s.stop()
        sim.stop()


async def register_webhook(rig: Rig) -> None:
    async with rig.sim_api() as api:
        r = await api.post(
            "/events/webhooks",
            json={
                "name": "faults",
                "url": f"{rig.url('ingest')}/api/webhooks/e2b",
                "enabled": True,
                "events": list(e2b.SUBSCRIBED_TYPES),
                "signatureSecret": rig.webhook_secret,
            },
        )
    assert r.status_code == 201, r.text


def new_secrets() -> tuple[str, str]:
    return f"faults-webhook-{uuid.uuid4().hex}", f"faults-jwt-{uuid.uuid4().hex}{uuid.uuid4().hex}"
