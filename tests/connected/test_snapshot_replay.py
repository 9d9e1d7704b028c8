"""Issue 15, item 4: `replay --from-snapshot` (the compacted sandbox-state topic plus the
lifecycle's tail) rebuilds the same PostgreSQL states and Redis documents as a full replay, folds
facts that came after the snapshot, and the projector's snapshot records never claim a fact
their state does not hold."""

from __future__ import annotations

import io
import random
import uuid
from collections.abc import AsyncIterator

import pytest

from projector.adapters.kafka_state import KafkaStateSnapshots
from projector.domain import SandboxState, evolve
from projector.replay.kafka_source import TopicReader
from projector.replay.run import Replay
from projector.replay.verify import Differs
from projector.snapshots import decode as decode_state
from sandbox_common import envelope as env
from sandbox_common.kafka_connection import KafkaConnection
from tests.connected.conftest import Infra
from tests.connected.replay_support import (
    PARTITIONS,
    ReplayStore,
    create_topic,
    delete_topic,
    drop_state,
    project_live,
    publish,
    random_stream,
    snapshot,
    without_marker,
)

pytestmark = pytest.mark.connected


@pytest.fixture
async def state_topic(prepared: Infra) -> AsyncIterator[str]:
    name = f"replay-state-test-{uuid.uuid4().hex[:8]}"
    await create_topic(prepared.kafka, name, PARTITIONS)
    try:
        yield name
    finally:
        await delete_topic(prepared.kafka, name)


async def _records(bootstrap: str, topic: str) -> list[tuple[int, int, bytes | None, bytes | None]]:
    out: list[tuple[int, int, bytes | None, bytes | None]] = []
    async with TopicReader(KafkaConnection(bootstrap), topic) as reader:
        async for batch in reader.read(await reader.starts(), await reader.ends()):
            out.extend((r.partition, r.offset, r.key, r.value) for r in batch)
    return out


@pytest.mark.parametrize("seed", [11, 12])
async def test_from_snapshot_rebuilds_what_a_full_replay_does(
    store: ReplayStore, state_topic: str, seed: int
) -> None:
    rng = random.Random(seed)
    bootstrap = store.settings.kafka_bootstrap_servers
    await publish(bootstrap, store.topic, random_stream(rng, 40, 600))
    writer = KafkaStateSnapshots(KafkaConnection(bootstrap), state_topic)
    try:
        await project_live(store, rng, writer)
    finally:
        await writer.close()
    # Facts after the snapshot: only the lifecycle's tail has them.
    later = random_stream(rng, 10, 80)
    await publish(bootstrap, store.topic, later)
    total = len(await _records(bootstrap, store.topic))

    full = await Replay(store.settings, store.topic, io.StringIO()).run(verify=False)
    assert full.records == total
    expected = await snapshot(store)

    await drop_state(store, "sandboxes")  # the current state; the history stays
    report = await Replay(store.settings, store.topic, io.StringIO(), state_topic).run(verify=False)
    assert report.records < total  # the tail only
    assert report.records >= len(later)
    rebuilt = await snapshot(store)
    assert rebuilt["has_marker"]
    assert without_marker(rebuilt) == without_marker(expected)

    verified = await Replay(store.settings, store.topic, io.StringIO(), state_topic).run(
        verify=True
    )
    assert verified.differs is Differs.NOTHING, verified.differences


async def test_no_snapshot_record_claims_a_fact_its_state_does_not_hold(
    store: ReplayStore, state_topic: str
) -> None:
    rng = random.Random(5)
    bootstrap = store.settings.kafka_bootstrap_servers
    await publish(bootstrap, store.topic, random_stream(rng, 30, 400))
    writer = KafkaStateSnapshots(KafkaConnection(bootstrap), state_topic)
    try:
        await project_live(store, rng, writer)
    finally:
        await writer.close()
    facts = await _records(bootstrap, store.topic)
    checked = 0
    for _, _, key, value in await _records(bootstrap, state_topic):
        assert key is not None
        assert value is not None
        record = decode_state(value)
        if record.state is None:
            continue
        folded: SandboxState | None = None
        for partition, offset, _, raw in facts:
            if partition != record.partition or offset >= record.offset or raw is None:
                continue
            try:
                fact = env.decode(raw)
            except env.EnvelopeError:
                continue
            if fact.sandbox_id == key.decode():
                folded = evolve(folded, fact)
        assert folded == record.state, key
        checked += 1
    assert checked > 30
