"""The `sandbox-state` topic's records (pure): each sandbox's latest state with the lifecycle
position it reflects, and per lifecycle partition a watermark. What a rebuild may assume from
them is said here once.

- A state record (key = sandbox id) says: this state is the fold of every fact of the sandbox
  on lifecycle partition `partition` below `offset`. It is written after the PostgreSQL commit
  that holds that state, so it never claims a fact its state does not include.
- A watermark record (key = `WATERMARK_PREFIX` + partition, no state) says: every sandbox with a
  fact below `offset` on that partition has a state record reflecting all of them. It is sent
  only once the state records of the batches below it are acknowledged, so a rebuild starts
  reading the lifecycle there, folds what follows onto the states and loses nothing.

- A policy record (key = the policy's subject, facts.policy_subject) holds the latest policy
  fact of a project, or of the default, as the projector stored it: a rebuild from the snapshot
  keeps the policies set before the watermarks. Its schema version is 2, so a reader of version
  1 skips it (unreadable) instead of taking it for a watermark.

Killed sandboxes keep their KILLED record (never a tombstone): PostgreSQL keeps them for ever too,
and without it a late fact for a killed sandbox would bring it back in a rebuild.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import msgspec

from projector.domain import SandboxState
from sandbox_common.envelope import Envelope

SCHEMA_VERSION = 1
POLICY_SCHEMA_VERSION = 2
# Sandbox ids never hold a NUL: these keys cannot collide with one.
WATERMARK_PREFIX = "\x00watermark:"

Offsets = dict[int, int]  # lifecycle partition -> offset


class SnapshotError(ValueError):
    """A `sandbox-state` record this reader cannot use (unreadable, or a newer schema)."""


class StateRecord(msgspec.Struct, kw_only=True, frozen=True):
    schema_version: int
    partition: int
    # The next lifecycle offset: every fact of this sandbox (or partition) below it is folded.
    offset: int
    state: SandboxState | None = None
    policy: Envelope | None = None  # a policy record: the policy fact itself


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(StateRecord)


def encode(record: StateRecord) -> bytes:
    return _encoder.encode(record)


def decode(value: bytes) -> StateRecord:
    try:
        record = _decoder.decode(value)
    except msgspec.DecodeError as exc:
        raise SnapshotError(f"not a sandbox-state record: {exc}") from exc
    if record.schema_version > POLICY_SCHEMA_VERSION:
        raise SnapshotError(
            f"schema_version {record.schema_version} is newer than this reader"
            f" ({POLICY_SCHEMA_VERSION})"
        )
    return record


def watermark_key(partition: int) -> str:
    return f"{WATERMARK_PREFIX}{partition}"


@dataclass(frozen=True)
class Outgoing:
    """One batch's records: the states first, the watermarks once those are acknowledged."""

    states: list[tuple[str, bytes]]
    watermarks: list[tuple[str, bytes]]


def outgoing(
    states: Iterable[SandboxState],
    partition_of: Mapping[str, int],
    next_offsets: Sequence[tuple[str, int, int]],
    policies: Iterable[tuple[Envelope, int, int]] = (),
) -> Outgoing:
    """A batch's states (each sandbox's partition from its facts), its policy facts (with their
    partitions and offsets) and where the batch ends on each partition it read
    (`next_offsets`: topic, partition, next offset)."""
    ends = {p: o for _, p, o in next_offsets}
    out = [
        (
            st.sandbox_id,
            encode(
                StateRecord(
                    schema_version=SCHEMA_VERSION,
                    partition=partition_of[st.sandbox_id],
                    offset=ends[partition_of[st.sandbox_id]],
                    state=st,
                )
            ),
        )
        for st in states
    ]
    out += [
        (
            fact.sandbox_id,
            encode(
                StateRecord(
                    schema_version=POLICY_SCHEMA_VERSION,
                    partition=partition,
                    offset=offset + 1,  # the fact's own: a rebuild keeps where it was read
                    policy=fact,
                )
            ),
        )
        for fact, partition, offset in policies
    ]
    marks = [
        (
            watermark_key(p),
            encode(StateRecord(schema_version=SCHEMA_VERSION, partition=p, offset=o)),
        )
        for p, o in sorted(ends.items())
    ]
    return Outgoing(out, marks)


@dataclass
class Snapshot:
    """The `sandbox-state` topic read whole: the last record of each key wins, as compaction
    would keep it, unless an earlier one reflects more of the lifecycle log (a rebalance's
    stale writer; compaction may already have removed the newer one, see OPERATIONS)."""

    states: dict[str, SandboxState] = field(default_factory=dict)
    reflected: dict[str, tuple[int, int]] = field(
        default_factory=dict
    )  # sid -> (partition, offset)
    watermarks: Offsets = field(default_factory=dict)
    # subject -> (its latest policy fact, its lifecycle partition and offset)
    policies: dict[str, tuple[Envelope, int, int]] = field(default_factory=dict)
    unreadable: int = 0

    def add(self, key: bytes | None, value: bytes | None) -> None:
        if key is None:
            self.unreadable += 1
            return
        name = key.decode()
        if value is None:  # a tombstone: the key is gone
            self.states.pop(name, None)
            self.reflected.pop(name, None)
            return
        try:
            record = decode(value)
        except SnapshotError:
            self.unreadable += 1
            return
        if record.state is None and record.policy is None:
            self.watermarks[record.partition] = record.offset
            return
        seen = self.reflected.get(name)
        if seen is not None and seen[0] == record.partition and seen[1] > record.offset:
            # A projector that lost the partition in a rebalance sent an older state after
            # the new owner's newer one: the state reflecting more of the log wins.
            return
        if record.policy is not None:
            self.policies[name] = (record.policy, record.partition, record.offset - 1)
        else:
            assert record.state is not None
            self.states[name] = record.state
        self.reflected[name] = (record.partition, record.offset)

    def tail_starts(self, first: Offsets) -> Offsets:
        """Where to read each lifecycle partition from: its watermark (every fact before it is
        in the states), or the partition's first offset when it has none."""
        return {p: max(o, self.watermarks.get(p, o)) for p, o in first.items()}
