"""Use case: project one batch of `sandbox-lifecycle` records into PostgreSQL, then Redis.

The order is what makes it safe to crash anywhere: PostgreSQL (truth, history, offsets) in one
transaction, then Redis (guarded by revision, so replays never regress it), then the caller
commits the Kafka offsets. A crash before the commit re-delivers the batch, and re-applying it
changes nothing because the fold is idempotent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field, replace
from typing import Protocol

from projector import metrics, snapshots
from projector.domain import SandboxState, evolve
from projector.flaps import flap_facts
from sandbox_common.dead_letters import Record
from sandbox_common.envelope import Envelope, EnvelopeError, decode
from sandbox_common.facts import PolicyView, is_policy, policy_view
from sandbox_common.policies import Policy, PolicyError
from sandbox_common.readmodel import DeadlineRule, Status

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
class PolicyChange:
    """The latest policy fact of one subject (a project's, or the default) in a batch: a policy
    fact is about no sandbox and is kept out of the fold."""

    subject: str
    project_id: str | None
    policy: Policy
    fact: Positioned
    # The policy (event id) this one amends, when that one is not in the same batch: the store
    # applies it only while that one is still in force (facts.PolicySet.amends).
    amends: str | None = None


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
        policies: Sequence[PolicyChange] = (),
    ) -> Collection[str]:
        """Stores the batch; returns the policy subjects whose amendment was refused (the
        policy it amends is no longer in force)."""
        ...


class StateStore(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[Transaction]: ...


class ReadModel(Protocol):
    async def publish(self, projected: Sequence[Projected]) -> None: ...


class StateSnapshots(Protocol):
    """The `sandbox-state` topic: returns once the batch's records are all acknowledged."""

    async def write(self, batch: snapshots.Outgoing) -> None: ...


class Outbox(Protocol):
    """What a batch sends to Kafka before it is stored: its poison records to the dead-letter
    topic, and the facts it derived (flapping) to `sandbox-lifecycle`."""

    async def send(self, record: Record, reason: str) -> None: ...

    async def publish(self, fact: Envelope) -> None: ...


class PolicyUpdates(Protocol):
    """Told of a batch's stored policy facts (policy_apply.PolicyKeeper)."""

    async def applied(self, changes: Sequence[PolicyChange]) -> None: ...


@dataclass(frozen=True)
class Projection:
    """Where a batch goes, and the rule its derived facts and documents follow."""

    store: StateStore
    read_model: ReadModel
    outbox: Outbox
    rule: DeadlineRule
    # None: no `sandbox-state` records (tests of the stores alone); the live projector has one.
    snapshots: StateSnapshots | None = None
    # None: policies are stored but nobody applies them (tests of the stores alone).
    policies: PolicyUpdates | None = None


def parse(records: Sequence[Record]) -> tuple[list[Positioned], list[Poison]]:
    facts: list[Positioned] = []
    poison: list[Poison] = []
    for r in records:
        if r.value is None:
            poison.append(Poison(r, "empty record value"))
            continue
        try:
            fact = decode(r.value)
            if is_policy(fact):
                policy_view(fact)  # an unusable policy is refused here, whole
        except (EnvelopeError, PolicyError) as exc:
            poison.append(Poison(r, str(exc)))
            continue
        facts.append(Positioned(fact, r.topic, r.partition, r.offset))
    return facts, poison


@dataclass(frozen=True)
class Folded:
    """A batch folded onto the states before it, ready to be written."""

    facts: list[Positioned]
    poison: list[Poison]
    changed: list[Projected]
    # Unchanged, but Redis may have missed them before a crash: rewritten there.
    touched: list[Projected]
    offsets: list[tuple[str, int, int]]
    # States this batch turned PAUSED (not PAUSED before it): the seed's "Marked ... PAUSED".
    newly_paused: list[SandboxState] = field(default_factory=list)
    # Facts derived from the batch (flapping), published before it is stored.
    derived: list[Envelope] = field(default_factory=list)
    # The latest policy of each subject the batch set.
    policies: list[PolicyChange] = field(default_factory=list)

    @property
    def outcome(self) -> BatchOutcome:
        return BatchOutcome(facts=self.facts, changed=self.changed, poison=self.poison)

    def states(self) -> dict[str, tuple[SandboxState, int]]:
        """Each sandbox's state and revision once this batch is written."""
        return {p.state.sandbox_id: (p.state, p.revision) for p in (*self.touched, *self.changed)}


def amended(
    held: PolicyChange | None, subject: str, view: PolicyView, positioned: Positioned
) -> PolicyChange | None:
    """The subject's policy after `view` (None: it leaves `held` in force). An amendment of
    the policy held from earlier in the batch is checked here; of one stored before, by the
    store."""
    if view.amends is None:
        return PolicyChange(subject, view.project_id, view.policy, positioned)
    if held is None:
        return PolicyChange(subject, view.project_id, view.policy, positioned, view.amends)
    if held.fact.fact.event_id == view.amends:
        return PolicyChange(subject, view.project_id, view.policy, positioned, held.amends)
    return None


def fold_batch(
    records: Sequence[Record],
    facts: Sequence[Positioned],
    poison: Sequence[Poison],
    current: Mapping[str, tuple[SandboxState, int]],
    rule: DeadlineRule,
) -> Folded:
    """Pure: the batch's facts folded onto `current` (state and revision per sandbox)."""
    states: dict[str, SandboxState] = {sid: st for sid, (st, _) in current.items()}
    policies: dict[str, PolicyChange] = {}
    for positioned in facts:
        fact, sid = positioned.fact, positioned.fact.sandbox_id
        if is_policy(fact):
            view = policy_view(fact)  # parse() refused the unusable ones
            change = amended(policies.get(sid), sid, view, positioned)
            if change is not None:
                policies[sid] = change
            continue
        states[sid] = evolve(states.get(sid), fact)
    changed: list[Projected] = []
    touched: list[Projected] = []
    paused: list[SandboxState] = []
    derived: list[Envelope] = []
    for sid, state in states.items():
        before = current.get(sid)
        if before is None:
            changed.append(Projected(state, 1))
        elif before[0] != state:
            changed.append(Projected(state, before[1] + 1))
        else:
            touched.append(Projected(state, before[1]))
            continue
        was = before[0] if before else None
        if state.status is Status.PAUSED and (was is None or was.status is not Status.PAUSED):
            paused.append(state)
        if state.resumes:  # cheap test first: most sandboxes have never been resumed
            derived.extend(flap_facts(was, state, rule))
    offsets = next_offsets(records)
    return Folded(
        list(facts),
        list(poison),
        changed,
        touched,
        offsets,
        paused,
        derived,
        list(policies.values()),
    )


async def project_batch(records: Sequence[Record], to: Projection) -> BatchOutcome:
    facts, poison = parse(records)
    # Dead letters first: if the DLQ cannot take them, the batch fails and nothing is skipped.
    for p in poison:
        await to.outbox.send(p.record, p.reason)
    async with to.store.transaction() as tx:
        current = await tx.load(sandbox_ids(facts))
        folded = fold_batch(records, facts, poison, current, to.rule)
        await _publish_derived(folded, to.outbox)
        refused = await tx.save(folded.changed, facts, folded.offsets, folded.policies)
    folded = _without(folded, refused)
    await publish_folded(folded, to)
    return folded.outcome


async def store_folded(folded: Folded, to: Projection) -> Folded:
    """The first half of `project_batch` for a batch folded beforehand (see pipeline.py): dead
    letters and derived facts, then PostgreSQL. The revision guard refuses it if a state it was
    folded onto was not the one PostgreSQL holds. Returns the batch as stored (without the
    policy amendments the store refused), for `publish_folded`."""
    for p in folded.poison:
        await to.outbox.send(p.record, p.reason)
    await _publish_derived(folded, to.outbox)
    async with to.store.transaction() as tx:
        refused = await tx.save(folded.changed, folded.facts, folded.offsets, folded.policies)
    return _without(folded, refused)


def _without(folded: Folded, refused: Collection[str]) -> Folded:
    """The batch without the policy amendments the store refused: they are in the history
    (the learner's value was not applied), never in the state topic nor applied."""
    if not refused:
        return folded
    for subject in refused:
        log.info("policy amendment of %s not applied: the policy it amends was replaced", subject)
    return replace(folded, policies=[c for c in folded.policies if c.subject not in refused])


async def _publish_derived(folded: Folded, outbox: Outbox) -> None:
    """Before the batch is stored, so a crash cannot lose them: a batch delivered again derives
    the same facts with the same ids, and the history keeps each id once."""
    for fact in folded.derived:
        await outbox.publish(fact)
        metrics.FLAPS.inc()
        log.warning(
            "Sandbox %s is flapping: our idle pause was undone by a resume within the window",
            fact.sandbox_id,
            extra={"sandbox_id": fact.sandbox_id, "project_id": fact.project_id, **fact.data},
        )


async def publish_folded(folded: Folded, to: Projection) -> None:
    """The second half, once PostgreSQL holds the batch: Redis, and beside it the batch's
    `sandbox-state` records (so none claims an offset PostgreSQL does not hold yet). Both before
    the caller commits the batch's offsets: a crash re-delivers it, and its states, unchanged
    then, are written again as `touched`."""
    projected = [*folded.changed, *folded.touched]
    if to.snapshots is None:
        await to.read_model.publish(projected)
    else:
        partition_of = {p.fact.sandbox_id: p.partition for p in folded.facts}
        batch = snapshots.outgoing(
            (p.state for p in projected),
            partition_of,
            folded.offsets,
            ((c.fact.fact, c.fact.partition, c.fact.offset) for c in folded.policies),
        )
        # Both run to their end; the first failure is raised as itself (retries.py tells a
        # Redis outage from other errors by its type).
        results = await asyncio.gather(
            to.read_model.publish(projected), to.snapshots.write(batch), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
    if folded.policies and to.policies is not None:
        # Before the offsets are committed: a crash re-delivers the facts and they apply again.
        await to.policies.applied(folded.policies)
    # Once the pause shows to readers. A crash just before loses the line, not the pause: the
    # re-delivered batch finds the state PAUSED in PostgreSQL already.
    for state in folded.newly_paused:
        log.info(
            "Marked sandbox %s as PAUSED (project: %s)",
            state.sandbox_id,
            state.project_id,
            extra={"sandbox_id": state.sandbox_id, "project_id": state.project_id},
        )


def sandbox_ids(facts: Sequence[Positioned]) -> list[str]:
    """The sandboxes a batch's facts are about (policy facts are about none)."""
    return sorted({p.fact.sandbox_id for p in facts if not is_policy(p.fact)})


def next_offsets(records: Sequence[Record]) -> list[tuple[str, int, int]]:
    nxt: dict[tuple[str, int], int] = {}
    for r in records:
        key = (r.topic, r.partition)
        nxt[key] = max(nxt.get(key, 0), r.offset + 1)
    return [(t, p, o) for (t, p), o in sorted(nxt.items())]
