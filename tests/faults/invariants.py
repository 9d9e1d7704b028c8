"""What must hold after every fault, checked against the topic itself.

The topic is folded with the projector's own pure `evolve`, up to exactly the offsets the
projector recorded in the same PostgreSQL snapshot as the rows it wrote, so PostgreSQL must equal
the fold to the field (stamps included) while facts keep arriving. Redis, written after
PostgreSQL, is compared once the system is quiet: each status document, its revision and its
entries in the idle-deadline and transitional indexes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition

from projector.adapters.postgres import _COLUMNS, state_from_row
from projector.domain import SandboxState, evolve
from sandbox_common import topics
from sandbox_common.envelope import decode
from sandbox_common.facts import is_policy
from sandbox_common.readmodel import TRANSITIONAL, DeadlineRule, Layout, decode_doc, keys, to_doc
from tests.connected import redis_mode


@dataclass
class TopicFold:
    """The fold of `sandbox-lifecycle` so far; advanced incrementally between scenarios."""

    kafka: str
    position: dict[int, int] = field(default_factory=dict)
    states: dict[str, SandboxState] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)  # records per event id

    async def advance(self, to: dict[int, int]) -> None:
        wanted = {p: end for p, end in to.items() if end > self.position.get(p, 0)}
        if not wanted:
            return
        consumer = AIOKafkaConsumer(bootstrap_servers=self.kafka, enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign([TopicPartition(topics.LIFECYCLE, p) for p in wanted])
            for p in wanted:
                consumer.seek(TopicPartition(topics.LIFECYCLE, p), self.position.get(p, 0))
            deadline = time.monotonic() + 120
            while wanted:
                assert time.monotonic() < deadline, f"topic not readable up to {wanted}"
                batch = await consumer.getmany(timeout_ms=1000)
                for tp, records in batch.items():
                    for r in records:
                        if r.offset >= wanted.get(tp.partition, 0):
                            break
                        assert r.value is not None, f"empty record at {tp}@{r.offset}"
                        fact = decode(r.value)
                        self.counts[fact.event_id] += 1
                        if not is_policy(fact):  # about no sandbox (project_policies)
                            self.states[fact.sandbox_id] = evolve(
                                self.states.get(fact.sandbox_id), fact
                            )
                        self.position[tp.partition] = r.offset + 1
                    if self.position.get(tp.partition, 0) >= wanted.get(tp.partition, 0):
                        wanted.pop(tp.partition, None)
                        consumer.pause(tp)
        finally:
            with contextlib.suppress(asyncio.CancelledError):  # aiokafka#647 on a quick stop
                await consumer.stop()


@dataclass(frozen=True)
class Snapshot:
    """PostgreSQL in one repeatable-read snapshot: the projector's offsets and what it wrote."""

    offsets: dict[int, int]
    states: dict[str, tuple[SandboxState, int]]
    history: Counter[str]


async def snapshot(database_url: str) -> Snapshot:
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            offsets = await conn.fetch(
                "SELECT partition, next_offset FROM projector_offsets WHERE topic = $1",
                topics.LIFECYCLE,
            )
            rows = await conn.fetch(f"SELECT {_COLUMNS} FROM sandboxes")  # noqa: S608
            events = await conn.fetch("SELECT event_id FROM sandbox_events")
    finally:
        await conn.close()
    return Snapshot(
        {r["partition"]: r["next_offset"] for r in offsets},
        {r["sandbox_id"]: (state_from_row(r), r["revision"]) for r in rows},
        Counter(r["event_id"] for r in events),
    )


def compare_postgres(fold: TopicFold, snap: Snapshot) -> list[str]:
    problems = []
    for sid in sorted(fold.states.keys() | snap.states.keys()):
        folded, stored = fold.states.get(sid), snap.states.get(sid)
        if stored is None or folded != stored[0]:
            problems.append(f"postgres {sid}: fold {folded!r} != stored {stored!r}")
    if set(snap.history) != set(fold.counts):
        missing = set(fold.counts) - set(snap.history)
        extra = set(snap.history) - set(fold.counts)
        problems.append(f"history: {len(missing)} facts missing, {len(extra)} not on the topic")
    return problems[:10]


async def compare_redis(redis_url: str, snap: Snapshot, default_idle_seconds: int) -> list[str]:
    client = redis_mode.client(redis_url)  # the suite's Redis: one server or a cluster
    problems: list[str] = []
    try:
        ids = sorted(snap.states)
        async with client.pipeline(transaction=False) as pipe:
            layout = Layout()  # the services' default READ_MODEL_SHARDS
            for sid in ids:
                pipe.hgetall(layout.doc(sid))
                # idle, transitional, hard end, delete
                for index in layout.indexes(layout.shard(sid)):
                    pipe.zscore(index, sid)
            answers = await pipe.execute()
    finally:
        await client.aclose()
    now = datetime.now(UTC)
    for i, sid in enumerate(ids):
        stored, deadline, since, hard_end, deletes = answers[5 * i : 5 * i + 5]
        state, revision = snap.states[sid]
        want = to_doc(state, revision, now, DeadlineRule(default_idle_seconds))
        if want is None:
            if stored:
                problems.append(f"redis {sid}: a document for a sandbox of unknown status")
            continue
        if not stored:
            problems.append(f"redis {sid}: no document (postgres: {state.status} r{revision})")
            continue
        doc = decode_doc(stored[keys.DOC_FIELD.encode()])
        got_revision = int(stored[keys.REVISION_FIELD.encode()])
        if got_revision != revision or msgspec.structs.replace(doc, updated_at=None) != (
            msgspec.structs.replace(want, updated_at=None)
        ):
            problems.append(f"redis {sid}: r{got_revision} {doc!r} != r{revision} {want!r}")
        want_deadline = want.idle_deadline_at.timestamp() if want.idle_deadline_at else None
        if not _same_time(deadline, want_deadline):
            problems.append(f"redis {sid}: idle deadline {deadline} != {want_deadline}")
        changed = want.status_changed_at if want.status in TRANSITIONAL else None
        if not _same_time(since, changed.timestamp() if changed else None):
            problems.append(f"redis {sid}: transitional since {since} != {changed}")
        want_end = want.max_lifetime_at.timestamp() if want.max_lifetime_at else None
        if not _same_time(hard_end, want_end):
            problems.append(f"redis {sid}: hard end {hard_end} != {want_end}")
        want_delete = want.delete_at.timestamp() if want.delete_at else None
        if not _same_time(deletes, want_delete):
            problems.append(f"redis {sid}: delete at {deletes} != {want_delete}")
    return problems[:10]


async def redis_behind(redis_url: str, snap: Snapshot, default_idle_seconds: int) -> list[str]:
    """The sandboxes whose Redis document is older than the PostgreSQL snapshot's row (or
    missing). Not an equality: the system may have moved past the snapshot meanwhile (a
    reconciler fact, an idle pause), and Redis with it."""
    client = redis_mode.client(redis_url)
    try:
        ids = sorted(snap.states)
        layout = Layout()
        async with client.pipeline(transaction=False) as pipe:
            for sid in ids:
                pipe.hget(layout.doc(sid), keys.REVISION_FIELD)
            revisions = await pipe.execute()
    finally:
        await client.aclose()
    now, rule = datetime.now(UTC), DeadlineRule(default_idle_seconds)
    behind = []
    for sid, held in zip(ids, revisions, strict=True):
        state, revision = snap.states[sid]
        if to_doc(state, revision, now, rule) is None:
            continue  # no document for a sandbox of unknown status
        if held is None or int(held) < revision:
            behind.append(f"redis {sid}: r{held and int(held)} < postgres r{revision}")
    return behind


def _same_time(a: float | None, b: float | None) -> bool:
    return (a is None) == (b is None) and (a is None or b is None or abs(a - b) < 0.002)
