"""Issue 6, observability: one idle sandbox goes from E2B's webhook to its pause through the real
services, and each service's /metrics shows the issue's metrics moving (webhooks received and
rejected by reason, publish latency, consumer lag, projection latency, ticks, pauses by outcome,
E2B latency by status code); the JSON logs follow the sandbox by one id from webhook to pause."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sandbox_common import e2b, topics
from tests.connected.conftest import Stack, start_group_at_end
from tests.connected.e2b_sim_process import SimProcess, free_port
from tests.connected.helpers import (
    eventually,
    forget_other_tests_deadlines,
    post_webhook,
    status_of,
    unique,
    webhook,
)
from tests.connected.services import ServiceProcess

pytestmark = pytest.mark.connected
KEY = "sim-observability-key"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(client: httpx.AsyncClient, url: str) -> Samples:
    text = (await client.get(f"{url}/metrics")).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum over the series of `name` whose labels include `labels` (0 when none)."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def series(samples: Samples, name: str, **labels: str) -> list[dict[str, str]]:
    wanted = set(labels.items())
    return [dict(ls) for (n, ls), _ in samples.items() if n == name and wanted <= ls]


@pytest.fixture
def sim() -> Iterator[SimProcess]:
    process = SimProcess({"E2B_SIM_API_KEY": KEY, "E2B_SIM_TICK_SECONDS": "0.05"}).start()
    yield process
    process.stop()


@dataclass
class Enforcement:
    ticker: ServiceProcess
    actuator: ServiceProcess
    actuator_group: str


@pytest.fixture
async def enforcement(stack: Stack, sim: SimProcess) -> AsyncIterator[Enforcement]:
    group = f"actuator-obs-{uuid.uuid4().hex[:8]}"
    await start_group_at_end(stack.infra.kafka, group, topics.COMMANDS)
    await forget_other_tests_deadlines(stack.infra.redis_url)
    tick_port, act_port = free_port(), free_port()
    env = {
        **stack.env,
        "E2B_API_URL": sim.url,
        "E2B_API_KEY": KEY,
        "ENFORCER_SCHEDULE": "1s",
        "ENFORCER_LEASE_SECONDS": "5",
        "ACTUATOR_GROUP_ID": group,
        "CONSUMER_LAG_INTERVAL_SECONDS": "1",
    }
    ticker = ServiceProcess(
        "enforcer", tick_port, {**env, "ENFORCER_PORT": str(tick_port)}, label=f"obs-tick-{group}"
    )
    actuator = ServiceProcess(
        "actuator", act_port, {**env, "ACTUATOR_PORT": str(act_port)}, label=f"obs-act-{group}"
    )
    await asyncio.gather(asyncio.to_thread(ticker.start), asyncio.to_thread(actuator.start))
    try:
        yield Enforcement(ticker, actuator, group)
    finally:
        ticker.stop()
        actuator.stop()


async def test_rejections_are_counted_by_reason(client: httpx.AsyncClient, stack: Stack) -> None:
    before = await scrape(client, stack.ingest.url)
    body = webhook("created", unique("sbx-obs"), unique("proj"))
    assert (await post_webhook(client, stack, body, signature=None)).status_code == 401
    assert (await post_webhook(client, stack, body, signature="v1=AAAA")).status_code == 401
    assert (await post_webhook(client, stack, b'{"type": 1}')).status_code == 400
    too_large = b'{"pad": "' + b"x" * 70_000 + b'"}'  # the stack's limit is 64 KiB
    assert (await post_webhook(client, stack, too_large)).status_code == 413
    after = await scrape(client, stack.ingest.url)
    name = "ingest_webhooks_rejected_total"
    for reason in ("signature_missing", "signature_mismatch", "malformed", "too_large"):
        grew = value(after, name, reason=reason) - value(before, name, reason=reason)
        assert grew == 1, reason


async def test_one_idle_sandbox_moves_every_metric_and_one_id_follows_it_through_the_logs(
    client: httpx.AsyncClient, stack: Stack, sim: SimProcess, enforcement: Enforcement
) -> None:
    ingest_before = await scrape(client, stack.ingest.url)
    projector_before = await scrape(client, stack.projector.url)
    project = unique("obs")
    async with httpx.AsyncClient(base_url=sim.url, headers={"X-API-Key": KEY}) as api:
        registered = await api.post(
            "/events/webhooks",
            json={
                "name": "observability",
                "url": f"{stack.ingest.url}/api/webhooks/e2b",
                "enabled": True,
                "events": list(e2b.SUBSCRIBED_TYPES),
                "signatureSecret": stack.webhook_secret,
            },
        )
        assert registered.status_code == 201, registered.text
        created = await api.post(
            "/sandboxes",
            json={
                "templateID": "base",
                "timeout": 600,
                "metadata": {"projectId": project, "idleTimeoutSeconds": "10"},
            },
        )
        assert created.status_code == 201, created.text
        sandbox_id = created.json()["sandboxID"]

    async def paused() -> bool:
        r = await status_of(client, stack, project)
        return r.status_code == 200 and r.json()["status"] == "PAUSED"

    await eventually(paused, within=45, interval=0.5)

    ingest = await scrape(client, stack.ingest.url)
    accepted = "ingest_webhooks_total"
    assert value(ingest, accepted, outcome="accepted") > value(
        ingest_before, accepted, outcome="accepted"
    )
    assert value(ingest, "ingest_publish_seconds_count") > value(
        ingest_before, "ingest_publish_seconds_count"
    )

    projector = await scrape(client, stack.projector.url)
    assert value(projector, "projector_latency_seconds_count") > value(
        projector_before, "projector_latency_seconds_count"
    )
    group = stack.env["PROJECTOR_GROUP_ID"]
    lag = series(projector, "kafka_consumer_lag_records", group=group, topic=topics.LIFECYCLE)
    assert lag, "the projector reports its group's lag"

    ticker = await scrape(client, enforcement.ticker.url)
    assert value(ticker, "enforcer_ticks_total", outcome="ran") >= 1
    assert value(ticker, "enforcer_pause_requests_total") >= 1

    async def actuator_lag_reported() -> Samples | None:
        samples = await scrape(client, enforcement.actuator.url)
        found = series(
            samples,
            "kafka_consumer_lag_records",
            group=enforcement.actuator_group,
            topic=topics.COMMANDS,
        )
        return samples if found else None

    actuator = await eventually(actuator_lag_reported, within=10, interval=0.5)
    assert value(actuator, "actuator_pause_commands_total", outcome="paused") >= 1
    assert (
        value(actuator, "actuator_e2b_request_seconds_count", operation="pause", status="204") >= 1
    )

    # One id from webhook to pause: every line about this sandbox names it in `sandbox_id`, and
    # the ticker's pause decision and the actuator's outcome share the command id.
    ingest_lines = _json_lines(stack.ingest, sandbox_id)
    received = [
        line for line in ingest_lines if line["message"].startswith("[E2B Webhook] Received event")
    ]
    assert received, "ingest logged the created webhook with sandbox_id"
    decided = [
        line
        for line in _json_lines(enforcement.ticker, sandbox_id)
        if line["message"].startswith("[Sandbox Idle Enforcer] Pausing idle sandbox")
    ]
    assert decided, "the ticker logged its pause decision with sandbox_id"
    command_id = decided[0]["command_id"]
    outcomes = [
        line for line in _json_lines(enforcement.actuator, sandbox_id) if line.get("e2b_status")
    ]
    assert [(o["command_id"], o["e2b_status"]) for o in outcomes] == [(command_id, 204)]


def _json_lines(process: ServiceProcess, sandbox_id: str) -> list[dict[str, Any]]:
    out = []
    for raw in process.log_path.read_text(errors="replace").split("\n"):
        if sandbox_id not in raw or not raw.startswith("{"):
            continue
        entry = json.loads(raw)
        if entry.get("sandbox_id") == sandbox_id:
            out.append(entry)
    return out
