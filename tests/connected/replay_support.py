"""What the replay tests share: a store of their own (a schema of the test database, Redis db
13, a topic per test), random fact streams, the live projection path, and state snapshots."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from projector.adapters.postgres import STATE_COLUMNS, Pool, PostgresStore, state_from_row
from projector.adapters.redis import RedisReadModel
from projector.adapters.schema import migrate
from projector.bootstrap import document_writer, policy_keeper
from projector.handlers import Projection, StateSnapshots, project_batch
from projector.replay.kafka_source import TopicReader
from sandbox_common import envelope as env
from sandbox_common import topics
from sandbox_common.dead_letters import Record
from sandbox_common.envelope import Envelope, FactType, Source
from sandbox_common.facts import Origin, policy_fact
from sandbox_common.policies import Policy
from sandbox_common.readmodel import Layout, decode_doc, keys
from sandbox_common.readmodel.reader import ReadModelReader
from sandboxctl.settings import Settings
from tests.connected import redis_mode
from tests.connected.conftest import Infra

SCHEMA = "replay_test"
REDIS_DB = 13
PARTITIONS = 4
_TYPES = [
    FactType.CREATED,
    FactType.UPDATED,
    FactType.ACTIVITY,
    FactType.PAUSE_REQUESTED,
    FactType.PAUSE_CANCELLED,
    FactType.PAUSED,
    FactType.WAKE_REQUESTED,
    FactType.WAKE_FAILED,
    FactType.RESUMED,
    FactType.KILLED,
    "sandbox.lifecycle.checkpointed",  # unknown upstream type: accepted, ignored
]


@dataclass(frozen=True)
class ReplayStore:
    topic: str
    settings: Settings


async def create_topic(bootstrap: str, topic: str, partitions: int = PARTITIONS) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()


async def delete_topic(bootstrap: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([topic])
    finally:
        await admin.close()


async def replay_store(infra: Infra) -> AsyncIterator[ReplayStore]:
    """A fresh topic, schema and Redis db; removed afterwards."""
    conn = await asyncpg.connect(infra.database_url)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        await conn.execute(f"CREATE SCHEMA {SCHEMA}")
    finally:
        await conn.close()
    sep = "&" if "?" in infra.database_url else "?"  # the last search_path given wins
    database_url = f"{infra.database_url}{sep}search_path={SCHEMA}"
    await migrate(database_url)
    if redis_mode.CLUSTER:
        # A cluster has database 0 only: the store gets a cluster of its own (make test starts
        # it in REDIS_MODE=cluster).
        redis_url = os.environ.get("TEST_REDIS_STORE_URL", "")
        if not redis_url:
            pytest.skip("a replay store on a Redis Cluster needs TEST_REDIS_STORE_URL")
    else:
        redis_url = f"{infra.redis_url.rsplit('/', 1)[0]}/{REDIS_DB}"
    client = redis_mode.client(redis_url)
    await client.flushdb()
    await client.aclose()
    topic = f"replay-test-{uuid.uuid4().hex[:8]}"
    await create_topic(infra.kafka, topic)
    settings = Settings(
        kafka_bootstrap_servers=infra.kafka,
        database_url=database_url,
        redis_url=redis_url,
        redis_cluster=redis_mode.CLUSTER,
    )
    try:
        yield ReplayStore(topic, settings)
    finally:
        await delete_topic(infra.kafka, topic)


def random_stream(rng: random.Random, sandboxes: int, facts: int) -> list[bytes]:
    """Facts of many types, out of order, some twice, and a few unreadable records."""
    now = datetime.now(UTC).replace(microsecond=0)
    ids = [f"rp-{uuid.uuid4().hex[:8]}" for _ in range(sandboxes)]
    projects = {sid: (f"proj-{sid}" if rng.random() < 0.9 else None) for sid in ids}
    out: list[bytes] = []
    for _ in range(facts):
        sid = rng.choice(ids)
        kind = rng.choice(_TYPES)
        at = now - timedelta(seconds=rng.randint(0, 3600), milliseconds=rng.randint(0, 999))
        data: dict[str, Any] = {}
        if rng.random() < 0.5:
            data["metadata"] = {"projectId": projects[sid] or "", "idleTimeoutSeconds": "60"}
        if kind == FactType.UPDATED:
            data["set_timeout"] = (at + timedelta(seconds=rng.randint(60, 600))).isoformat()
        if rng.random() < 0.3:
            data["template_id"] = rng.choice(["base", "python", "node"])
        fact = Envelope(
            event_id=str(uuid.uuid4()),
            type=FactType(kind),
            source=rng.choice(list(Source)),
            sandbox_id=sid,
            project_id=projects[sid],
            team_id=rng.choice([None, "team-1"]),
            occurred_at=at,
            received_at=now,
            data=data,
        )
        out.append(env.encode(fact))
        if rng.random() < 0.1:
            out.append(out[-1])  # delivered twice
        if rng.random() < 0.01:
            out.append(b"{not an envelope")
        if rng.random() < 0.02:  # an admin sets a project's policy, or the default
            out.append(env.encode(_policy_fact(rng, projects[sid], now)))
    return out


def _policy_fact(rng: random.Random, project: str | None, now: datetime) -> Envelope:
    policy = Policy(
        idle_timeout_seconds=rng.choice([None, 60, 600, 3600]),
        never_pause=rng.choice([None, True, False]),
        warn_before_seconds=rng.choice([None, 0, 30]),
    )
    at = now - timedelta(seconds=rng.randint(0, 3600))
    return policy_fact(project, policy, Origin(str(uuid.uuid4()), Source.ADMIN, at), "admin")


async def publish(bootstrap: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20)
    await producer.start()
    try:
        pending = []
        for value in values:
            key = (
                msgspec.json.decode(value).get("sandbox_id", "poison")
                if value[:2] == b'{"'
                else "x"
            )
            pending.append(await producer.send(topic, value, key=topics.record_key(key)))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()


class NoOutbox:
    async def send(self, record: Record, reason: str) -> None:
        return None

    async def publish(self, fact: Envelope) -> None:
        return None


@contextlib.asynccontextmanager
async def live_projection(
    settings: Settings, pool: Pool, client: Any, snapshots: StateSnapshots | None = None
) -> AsyncIterator[Projection]:
    """The live projector's adapters, policies applied as it applies them (no second pass
    delay); on leaving, every re-index has ended."""
    s = dataclasses.replace(settings, policy_reindex_second_pass_seconds=0.0)
    rule = s.deadline_rule()
    keeper = policy_keeper(s, pool, client)
    await keeper.load()
    try:
        read_model = RedisReadModel(document_writer(s, client), rule, keeper.current)
        yield Projection(PostgresStore(pool), read_model, NoOutbox(), rule, snapshots, keeper)
        await keeper.settle()
    finally:
        await keeper.close()


async def project_live(
    store: ReplayStore, rng: random.Random, snapshots: StateSnapshots | None = None
) -> None:
    """The live projector's path (project_batch, real adapters) over the whole topic, in
    batches of random size (and its `sandbox-state` records, when given a writer)."""
    s = store.settings
    pool = await asyncpg.create_pool(s.database_url, min_size=1, max_size=2)
    client = redis_mode.client(s.redis_url)
    try:
        async with TopicReader(s.kafka_connection(), store.topic) as reader:
            records: list[Record] = []
            async for batch in reader.read(await reader.starts(), await reader.ends()):
                records.extend(Record(r.topic, r.partition, r.offset, r.value) for r in batch)
        async with live_projection(s, pool, client, snapshots) as to:
            while records:
                size = rng.randint(1, 60)
                chunk, records = records[:size], records[size:]
                await project_batch(chunk, to)
    finally:
        await client.aclose()
        await pool.close()


async def snapshot(store: ReplayStore) -> dict[str, Any]:
    """Everything a reader can see, minus what a rebuild cannot reproduce (revisions, write
    times, tombstone expiry)."""
    conn = await asyncpg.connect(store.settings.database_url)
    try:
        rows = await conn.fetch(f"SELECT {', '.join(STATE_COLUMNS)} FROM sandboxes")  # noqa: S608
        states = {r["sandbox_id"]: state_from_row(r) for r in rows}
        history = {
            r["event_id"]: (r["sandbox_id"], r["type"], r["occurred_at"], r["data"])
            for r in await conn.fetch("SELECT * FROM sandbox_events")
        }
        policies = {
            r["subject"]: tuple(r.values())
            for r in await conn.fetch(
                "SELECT subject, project_id, policy, event_id, set_at, actor, kafka_partition,"
                " kafka_offset FROM project_policies"
            )
        }
    finally:
        await conn.close()
    client = redis_mode.client(store.settings.redis_url)
    try:
        docs = {}
        for sid in states:
            raw = await client.hget(Layout().doc(sid), keys.DOC_FIELD)
            if raw:
                doc = msgspec.structs.replace(decode_doc(raw), revision=0, updated_at=None)
                docs[sid] = doc
        served = {}
        for doc in docs.values():
            if doc.project_id:
                pointer: Any = await client.get(keys.project_sandbox(doc.project_id))
                target = docs.get(pointer.decode()) if pointer else None
                served[doc.project_id] = (
                    target.sandbox_id if target and target.status != "KILLED" else None
                )
        reader = ReadModelReader(client)
        idle = (await reader.idle_deadlines()).items()
        transitional = (await reader.transitional()).items()
        hard_ends = (await reader.hard_ends()).items()
        marker = await client.exists(keys.READ_MODEL_MARKER)
    finally:
        await client.aclose()
    return {
        "states": states,
        "history": history,
        "policies": policies,
        "docs": docs,
        "served": served,
        "idle": sorted((m, round(s, 3)) for m, s in idle),
        "transitional": sorted((m, round(s, 3)) for m, s in transitional),
        "hard_ends": sorted((m, round(s, 3)) for m, s in hard_ends),
        "has_marker": bool(marker),
    }


def without_marker(snap: dict[str, Any]) -> dict[str, Any]:
    """A snapshot minus whether the read model's marker is there (a rebuild sets it)."""
    return {k: v for k, v in snap.items() if k != "has_marker"}


async def drop_state(
    store: ReplayStore,
    tables: str = "sandboxes, sandbox_events, projector_offsets, project_policies",
) -> None:
    """Empties `tables` and all of Redis."""
    conn = await asyncpg.connect(store.settings.database_url)
    try:
        await conn.execute(f"TRUNCATE {tables}")
    finally:
        await conn.close()
    client = redis_mode.client(store.settings.redis_url)
    await client.flushdb()
    await client.aclose()


def lifecycle_fact(kind: FactType, sandbox_id: str, at: datetime) -> Envelope:
    """An E2B webhook's fact for a sandbox of its own project (`p-<id>`)."""
    project = f"p-{sandbox_id}"
    return Envelope(
        event_id=str(uuid.uuid4()),
        type=kind,
        source=Source.E2B_WEBHOOK,
        sandbox_id=sandbox_id,
        project_id=project,
        team_id=None,
        occurred_at=at,
        received_at=at,
        data={"metadata": {"projectId": project}},
    )


def lifecycle_records(
    kind: FactType, sandbox_ids: list[str], first_offset: int, at: datetime
) -> list[Record]:
    """One fact per sandbox, as records of partition 0 from `first_offset` on."""
    return [
        Record(topics.LIFECYCLE, 0, first_offset + i, env.encode(lifecycle_fact(kind, sid, at)))
        for i, sid in enumerate(sandbox_ids)
    ]
