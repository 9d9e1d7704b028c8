"""Fault tier (marker `faults`, `make test-faults`): the system on its own Kafka, PostgreSQL and
Redis (other ports, another state folder), which the scenarios kill -9 one after another."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.connected.conftest import reset_stores
from tests.connected.e2b_sim_process import SimProcess
from tests.faults.infra import LocalInfra
from tests.faults.invariants import TopicFold
from tests.faults.progress import EndOffsets
from tests.faults.report import ScenarioFigures, render_table
from tests.faults.rig import (
    ACTIVE_IDLE_SECONDS,
    SIM_KEY,
    Heartbeats,
    Rig,
    build_services,
    new_secrets,
    register_webhook,
    service_env,
)

ACTIVE_SANDBOXES = 4
_TABLES: list[str] = []  # this run's figures, for the terminal summary (also without -s)


@pytest.fixture(scope="session")
def infra() -> Iterator[LocalInfra]:
    local = LocalInfra()
    local.up()
    try:
        yield local
    finally:
        local.down()


@pytest.fixture(scope="session")
async def rig(infra: LocalInfra) -> AsyncIterator[Rig]:
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
    services = build_services(env, infra)
    http = httpx.AsyncClient(timeout=10.0)
    rig = Rig(infra, env, sim, services, webhook_secret, jwt_secret, http)
    heartbeat_task: asyncio.Task[None] | None = None
    try:
        await asyncio.gather(*(asyncio.to_thread(s.start) for s in services.values()))
        await register_webhook(rig)
        for i in range(ACTIVE_SANDBOXES):
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


@pytest.fixture(scope="session")
async def offsets(infra: LocalInfra) -> AsyncIterator[EndOffsets]:
    found = EndOffsets(infra.kafka)
    yield found
    await found.close()


@pytest.fixture(scope="session")
def fold(infra: LocalInfra) -> TopicFold:
    return TopicFold(infra.kafka)


@pytest.fixture(scope="session")
def results(infra: LocalInfra) -> Iterator[list[ScenarioFigures]]:
    found: list[ScenarioFigures] = []
    yield found
    if found:
        table = render_table(found)
        _TABLES.append(table)
        # The three-broker session keeps a report of its own next to the one-broker session's.
        name = "faults-report" if infra.brokers == 1 else f"faults-report-{infra.brokers}-brokers"
        (infra.state / f"{name}.md").write_text(table)
        (infra.state / f"{name}.json").write_text(
            json.dumps([f.as_dict() for f in found], indent=2)
        )


def load_settings() -> tuple[int, float]:
    """FAULTS_RATE webhooks/s for FAULTS_SECONDS per scenario (the issue asks 1,000/s for 30 s)."""
    return int(os.environ.get("FAULTS_RATE", "1000")), float(os.environ.get("FAULTS_SECONDS", "30"))


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for table in _TABLES:
        terminalreporter.write_sep("-", "fault scenarios: figures of this run")
        terminalreporter.write(table)
