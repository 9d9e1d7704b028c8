"""Fault tier (marker `faults`, `make test-faults`): the system on its own Kafka, PostgreSQL and
Redis (other ports, another state folder), which the scenarios kill -9 one after another."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.faults.infra import LocalInfra
from tests.faults.invariants import TopicFold
from tests.faults.progress import EndOffsets
from tests.faults.report import ScenarioFigures, render_table
from tests.faults.rig import Rig, open_rig

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
    async with open_rig(infra, ACTIVE_SANDBOXES) as opened:
        yield opened


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
        # Each session (one broker, three, three with a Redis Cluster) keeps a report of its own.
        name = "faults-report" if infra.brokers == 1 else f"faults-report-{infra.brokers}-brokers"
        name += "-redis-cluster" if infra.redis_cluster else ""
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
