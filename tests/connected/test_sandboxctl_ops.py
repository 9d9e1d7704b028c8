"""`sandboxctl topics create|describe` and `status` against the real Kafka, PostgreSQL, Redis."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from sandbox_common import topics
from sandbox_common.kafka_connection import KafkaConnection
from sandbox_common.readmodel import Layout, keys
from sandboxctl import topics_cmd
from sandboxctl.kafka_admin import KafkaAdmin
from sandboxctl.topic_specs import TopicSpec
from tests.connected import redis_mode
from tests.connected.conftest import Infra
from tests.connected.helpers import forget_other_tests_deadlines

pytestmark = pytest.mark.connected


def sandboxctl(
    infra: Infra, *argv: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": infra.kafka,
        "DATABASE_URL": infra.database_url,
        "REDIS_URL": infra.redis_url,
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-c", "from sandboxctl.cli import main; main()", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_create_makes_a_missing_topic_with_its_settings_then_leaves_it(
    prepared: Infra,
) -> None:
    name = f"sandboxctl-test-{uuid.uuid4().hex[:8]}"
    spec = TopicSpec(name, 3, 1, {"retention.ms": "-1", "min.insync.replicas": "1"})
    try:
        async with KafkaAdmin(KafkaConnection(prepared.kafka)) as admin:
            first = await topics_cmd.create(admin, [spec])
            second = await topics_cmd.create(admin, [spec])
            state = (await admin.existing([name]))[name]
        assert first == [f"{name}: created (3 partitions, replication factor 1)"]
        assert second == [f"{name}: exists"]
        assert (state.partitions, state.replication_factor) == (3, 1)
        assert state.configs["retention.ms"] == "-1"
    finally:
        cleanup = AIOKafkaAdminClient(bootstrap_servers=prepared.kafka)
        await cleanup.start()
        try:
            await cleanup.delete_topics([name])
        finally:
            await cleanup.close()


def test_describe_lists_the_topics_and_the_create_is_idempotent(prepared: Infra) -> None:
    created = sandboxctl(prepared, "topics", "create")
    assert created.returncode == 0, created.stderr
    assert [line.split(":")[0] for line in created.stdout.splitlines()] == [
        topics.LIFECYCLE,
        topics.COMMANDS,
        topics.LIFECYCLE_DLQ,
        topics.NOTIFICATIONS_DLQ,
        topics.STATE,
    ]
    described = sandboxctl(prepared, "topics", "describe")
    assert described.returncode == 0, described.stdout + described.stderr
    assert f"{topics.LIFECYCLE}: 12 partitions" in described.stdout
    as_json = sandboxctl(prepared, "topics", "describe", "--json")
    assert as_json.returncode == 0, as_json.stdout + as_json.stderr
    document = json.loads(as_json.stdout)
    assert [t["name"] for t in document["topics"]] == [
        topics.LIFECYCLE,
        topics.COMMANDS,
        topics.LIFECYCLE_DLQ,
        topics.NOTIFICATIONS_DLQ,
        topics.STATE,
    ]
    assert document["topics"][0]["partitions"] == 12
    assert document["topics"][0]["retentionMs"] == -1
    assert document["problems"] == []


def test_describe_reports_drift_with_exit_3(prepared: Infra) -> None:
    # Asking for more partitions than the topic has is drift: exit 3 (not argparse's 2), and
    # the reason.
    grown = sandboxctl(prepared, "topics", "describe", env={"DLQ_PARTITIONS": "6"})
    assert grown.returncode == 3, grown.stdout + grown.stderr
    assert f"PROBLEM: {topics.LIFECYCLE_DLQ}: 3 partitions, 6 wanted" in grown.stdout


async def test_status_flags_sandboxes_the_enforcer_left_overdue(prepared: Infra) -> None:
    redis = redis_mode.client(prepared.redis_url)
    member = f"sbx-overdue-{uuid.uuid4().hex[:8]}"
    try:
        assert not await redis.exists(keys.TICKER_LEASE), "no ticker may run in this test"
        # Earlier suites leave sandboxes due far longer ago (the hostile-input suites send
        # year-2000 timestamps): ours must be the oldest.
        await forget_other_tests_deadlines(prepared.redis_url)
        before = sandboxctl(prepared, "status")
        assert before.returncode in (0, 3), before.stderr  # other tests may leave due ones
        assert before.stdout.startswith("sandboxes (PostgreSQL): ")
        index = Layout().idle_deadlines(Layout().shard(member))
        await redis.zadd(index, {member: time.time() - 3600})
        overdue = sandboxctl(prepared, "status")
        assert overdue.returncode == 3, overdue.stdout + overdue.stderr
        (problem,) = [line for line in overdue.stdout.splitlines() if line.startswith("PROBLEM")]
        assert "the oldest for 36" in problem  # ours, due an hour ago (3600 s and a few)
        assert "(no ticker holds the lease): the enforcer is not pausing" in problem
        as_json = sandboxctl(prepared, "status", "--json")
        assert as_json.returncode == 3, as_json.stdout + as_json.stderr
        document = json.loads(as_json.stdout)
        assert document["due"] >= 1
        assert document["leaseHolder"] is None
        (again,) = document["problems"]  # the same problem, a second or so older
        assert "(no ticker holds the lease): the enforcer is not pausing" in again
    finally:
        await redis.zrem(Layout().idle_deadlines(Layout().shard(member)), member)
        await redis.aclose()
