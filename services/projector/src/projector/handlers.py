"""Use case: project one batch of `sandbox-lifecycle` records into PostgreSQL, then Redis.

The order is what makes it safe to crash anywhere: PostgreSQL (truth, history, offsets) in one
transaction, then Redis (guarded by revision, so replays never regress it), then the caller
commits the Kafka offsets. A crash before the commit re-delivers the batch, and re-applying it
changes nothing because the fold is idempotent.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol

from projector.domain import SandboxState, evolve
from sandbox_common.dead_letters import Record
from sandbox_common.envelope import Envelope, EnvelopeError, decode

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Positioned:
    fact: Envelope
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class Projected:
    state: SandboxState
    revision: int


@dataclass(frozen=True)
class Poison:
    record: Record
    reason: str


@dataclass
class BatchOutcome:
    facts: list[Positioned] = field(default_factory=list)
    changed: list[Projected] = field(default_factory=list)
    poison: list[Poison] = field(default_factory=list)


class Transaction(Protocol):
    async def load(self, sandbox_ids: Sequence[str]) -> dict[str, tuple[SandboxState, int]]: ...

    async def save(
        self,
        changed: Sequence[Projected],
        facts: Sequence[Positioned],
        offsets: Sequence[tuple[str, int, int]],
    ) -> None: ...


class StateStore(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[Transaction]: ...


class ReadModel(Protocol):
    async def publish(self, projected: Sequence[Projected]) -> None: ...


class DeadLetters(Protocol):
    async def send(self, poison: Poison) -> None: ...


def parse(records: Sequence[Record]) -> tuple[list[Positioned], list[Poison]]:
    facts: list[Positioned] = []
    poison: list[Poison] = []
    for r in records:
        if r.value is None:
            poison.append(Poison(r, "empty record value"))
            continue
        try:
            fact = decode(r.value)
        except EnvelopeError as exc:
            poison.append(Poison(r, str(exc)))
            continue
        facts.append(Positioned(fact, r.topic, r.partition, r.offset))
    return facts, poison


async def project_batch(
    records: Sequence[Record],
    store: StateStore,
    read_model: ReadModel,
    dead_letters: DeadLetters,
) -> BatchOutcome:
    facts, poison = parse(records)
    # Dead letters first: if the DLQ cannot take them, the batch fails and nothing is skipped.
    for p in poison:
        await dead_letters.send(p)
    outcome = BatchOutcome(facts=facts, poison=poison)
    touched: list[Projected] = []
    async with store.transaction() as tx:
        current = await tx.load(sorted({p.fact.sandbox_id for p in facts}))
        states: dict[str, SandboxState] = {sid: st for sid, (st, _) in current.items()}
        for positioned in facts:
            sid = positioned.fact.sandbox_id
            states[sid] = evolve(states.get(sid), positioned.fact)
        for sid, state in states.items():
            before = current.get(sid)
            if before is None:
                outcome.changed.append(Projected(state, 1))
            elif before[0] != state:
                outcome.changed.append(Projected(state, before[1] + 1))
            else:
                # Unchanged, but Redis may have missed it before a crash: rewrite it there.
                touched.append(Projected(state, before[1]))
        await tx.save(outcome.changed, facts, _next_offsets(records))
    await read_model.publish([*outcome.changed, *touched])
    return outcome


def _next_offsets(records: Sequence[Record]) -> list[tuple[str, int, int]]:
    nxt: dict[tuple[str, int], int] = {}
    for r in records:
        key = (r.topic, r.partition)
        nxt[key] = max(nxt.get(key, 0), r.offset + 1)
    return [(t, p, o) for (t, p), o in sorted(nxt.items())]
