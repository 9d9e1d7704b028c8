"""Issue 15, item 4: the `sandbox-state` records (snapshots.py) and the projector writing them
(handlers.publish_folded): encoding, where a rebuild starts reading, and no record ever
claiming a fact its state does not hold."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import pytest

from projector import snapshots
from projector.domain import SandboxState, evolve
from projector.handlers import Projection, project_batch
from sandbox_common import envelope as env
from sandbox_common.dead_letters import Record
from sandbox_common.envelope import FactType
from sandbox_common.readmodel import DeadlineRule
from tests.unit.test_projection_rules import fact
from tests.unit.test_projector_batches import MemoryDeadLetters, MemoryReadModel, MemoryStore

RULE = DeadlineRule(180)


def _state() -> SandboxState:
    st = evolve(None, fact(FactType.CREATED, 0, template_id="base"))
    st = evolve(st, fact(FactType.PAUSED, 5))
    return evolve(st, fact(FactType.RESUMED, 9))


def test_a_state_record_round_trips_and_carries_its_schema_version() -> None:
    batch = snapshots.outgoing([_state()], {"sbx-1": 3}, [("sandbox-lifecycle", 3, 42)])
    ((key, value),) = batch.states
    record = snapshots.decode(value)
    assert key == "sbx-1"
    assert record.schema_version == snapshots.SCHEMA_VERSION
    assert (record.partition, record.offset) == (3, 42)
    assert record.state == _state()


def test_newer_or_unreadable_records_are_refused() -> None:
    newer = msgspec.json.encode({"schema_version": 99, "partition": 0, "offset": 1})
    with pytest.raises(snapshots.SnapshotError, match="newer"):
        snapshots.decode(newer)
    with pytest.raises(snapshots.SnapshotError):
        snapshots.decode(b"{not json")


def test_a_batch_claims_its_own_end_per_partition_and_marks_each_partition() -> None:
    a = SandboxState(sandbox_id="a")
    b = SandboxState(sandbox_id="b")
    batch = snapshots.outgoing([a, b], {"a": 0, "b": 5}, [("t", 0, 10), ("t", 5, 7), ("t", 2, 4)])
    claimed = {
        k: (snapshots.decode(v).partition, snapshots.decode(v).offset) for k, v in batch.states
    }
    assert claimed == {"a": (0, 10), "b": (5, 7)}
    # Partition 2 held only unreadable records: it moves on too.
    marks = {k: snapshots.decode(v).offset for k, v in batch.watermarks}
    assert marks == {snapshots.watermark_key(p): o for p, o in [(0, 10), (2, 4), (5, 7)]}
    assert all(snapshots.decode(v).state is None for _, v in batch.watermarks)


def test_reading_the_topic_keeps_each_keys_last_record_and_starts_at_the_watermarks() -> None:
    old = snapshots.outgoing([SandboxState("a")], {"a": 0}, [("t", 0, 3)])
    new = snapshots.outgoing([_state()], {"sbx-1": 1}, [("t", 1, 8)])
    snap = snapshots.Snapshot()
    for k, v in [*old.states, *old.watermarks, *new.states, *new.watermarks]:
        snap.add(k.encode(), v)
    snap.add(
        b"gone", snapshots.outgoing([SandboxState("gone")], {"gone": 1}, [("t", 1, 2)]).states[0][1]
    )
    snap.add(b"gone", None)  # a tombstone removes the key
    snap.add(b"x", b"garbage")
    assert set(snap.states) == {"a", "sbx-1"}
    assert snap.reflected["sbx-1"] == (1, 8)
    assert snap.unreadable == 1
    # Partitions without a watermark are read from their first offset.
    assert snap.tail_starts({0: 0, 1: 0, 2: 5}) == {0: 3, 1: 8, 2: 5}


def test_an_older_state_sent_after_a_newer_one_does_not_win() -> None:
    """A rebalance: the partition's new owner sent the sandbox's state at offset 9, then the
    projector that lost the partition sent its older one (offset 5)."""
    newer = snapshots.outgoing([_state()], {"sbx-1": 1}, [("t", 1, 9)]).states[0]
    older = snapshots.outgoing([SandboxState("sbx-1")], {"sbx-1": 1}, [("t", 1, 5)]).states[0]
    snap = snapshots.Snapshot()
    for k, v in (newer, older):
        snap.add(k.encode(), v)
    assert snap.reflected["sbx-1"] == (1, 9)
    assert snap.states["sbx-1"] == _state()


@dataclass
class MemorySnapshots:
    """The topic as a log, and the order of writes against the store."""

    log: list[tuple[str, bytes]] = field(default_factory=list)
    events: list[str] = field(default_factory=list)

    async def write(self, batch: snapshots.Outgoing) -> None:
        self.events.append("snapshot")
        self.log.extend(batch.states)
        self.log.extend(batch.watermarks)


@dataclass
class OrderedStore(MemoryStore):
    events: list[str] = field(default_factory=list)

    async def save(
        self,
        changed: Sequence[Any],
        facts: Sequence[Any],
        offsets: Sequence[Any],
        policies: Sequence[Any] = (),
    ) -> frozenset[str]:
        refused = await super().save(changed, facts, offsets, policies)
        self.events.append("postgres")
        return refused


def _stream(rng: random.Random, sandboxes: int, count: int) -> list[Record]:
    kinds = [
        FactType.CREATED,
        FactType.ACTIVITY,
        FactType.PAUSED,
        FactType.RESUMED,
        FactType.KILLED,
    ]
    records: list[Record] = []
    offsets = [0, 0, 0]
    for i in range(count):
        sid = f"s{rng.randrange(sandboxes)}"
        partition = int(sid[1:]) % 3
        f = msgspec.structs.replace(
            fact(rng.choice(kinds), rng.randint(0, 600), event_id=f"e{i}"), sandbox_id=sid
        )
        value = env.encode(f) if rng.random() > 0.02 else b"{poison"
        records.append(Record("t", partition, offsets[partition], value))
        offsets[partition] += 1
    return records


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_no_record_claims_a_fact_its_state_does_not_hold(seed: int) -> None:
    rng = random.Random(seed)
    records = _stream(rng, 25, 400)
    store = OrderedStore()
    snaps = MemorySnapshots(events=store.events)
    to = Projection(store, MemoryReadModel(), MemoryDeadLetters(), RULE, snaps)
    rest = list(records)
    while rest:
        size = rng.randint(1, 40)
        await project_batch(rest[:size], to)
        rest = rest[size:]
        assert store.events[-2:] == ["postgres", "snapshot"]  # never before the commit

    def folded(sid: str, partition: int, below: int) -> SandboxState | None:
        st = None
        for r in records:
            if r.partition == partition and r.offset < below and r.value != b"{poison":
                f = env.decode(r.value or b"")
                if f.sandbox_id == sid:
                    st = evolve(st, f)
        return st

    for i, (key, value) in enumerate(snaps.log):
        record = snapshots.decode(value)
        if record.state is not None:
            # Exactly the sandbox's facts below the offset it claims.
            assert record.state == folded(key, record.partition, record.offset), (i, key)
    # Read at any moment, even half-way through a batch's records, the snapshot plus the
    # lifecycle from its watermarks is the whole fold.
    full = {sid: st for sid, (st, _) in store.rows.items()}
    for cut in [0, *rng.sample(range(len(snaps.log)), 30), len(snaps.log)]:
        snap = snapshots.Snapshot()
        for key, value in snaps.log[:cut]:
            snap.add(key.encode(), value)
        starts = snap.tail_starts({0: 0, 1: 0, 2: 0})
        states = dict(snap.states)
        for r in records:
            if r.offset >= starts[r.partition] and r.value != b"{poison":
                f = env.decode(r.value or b"")
                states[f.sandbox_id] = evolve(states.get(f.sandbox_id), f)
        assert states == full, cut
