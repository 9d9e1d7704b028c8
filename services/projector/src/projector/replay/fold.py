"""The in-memory bulk fold of replay: the live projector's rules (`domain.evolve`), applied to a
whole topic at once. Pure: records in, states and history rows out; no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from projector.domain import SandboxState, evolve
from projector.handlers import PolicyChange, Positioned
from sandbox_common.envelope import Envelope, EnvelopeError, decode
from sandbox_common.facts import is_policy, policy_view
from sandbox_common.policies import Placed, PolicyBook, PolicyError


@dataclass(frozen=True)
class HistoryFact:
    """One history row to write: the fact and where it was read."""

    fact: Envelope
    topic: str
    partition: int
    offset: int


@dataclass
class Rebuild:
    # False for --verify: only the event ids are compared, no rows are written.
    keep_history: bool = True
    # Facts that occurred before this are not history any more: retention dropped them live
    # (projector.history_retention.retention_start). They still make the states.
    history_since: datetime | None = None
    states: dict[str, SandboxState] = field(default_factory=dict)
    # The latest policy of each subject (policy facts are about no sandbox: not in `states`).
    policies: dict[str, PolicyChange] = field(default_factory=dict)
    # (event id, occurred_at) already in the history: a fact's copies are one row, as the live
    # table's key stores them (migration 004).
    seen: set[tuple[str, datetime]] = field(default_factory=set)
    # History rows not handed to the store yet (the caller drains them as it writes).
    pending: list[HistoryFact] = field(default_factory=list)
    # Sandboxes changed since `take_touched` (catch-up rewrites only those).
    touched: set[str] = field(default_factory=set)
    records: int = 0
    poison: int = 0
    duplicates: int = 0

    def book(self) -> PolicyBook:
        """The policies the rebuilt documents are written with."""
        return PolicyBook.of((c.project_id, c.policy) for c in self.policies.values())

    def placed(self) -> list[Placed]:
        return [
            Placed(c.project_id, c.fact.partition, c.fact.offset, c.policy)
            for c in self.policies.values()
        ]

    def add(self, value: bytes | None, topic: str, partition: int, offset: int) -> None:
        self.records += 1
        if value is None:
            self.poison += 1
            return
        try:
            fact = decode(value)
            policy = is_policy(fact)
            if policy:
                policy_view(fact)  # an unusable one is poison, as live
        except (EnvelopeError, PolicyError):
            # The live projector dead-lettered it; a redrive republishes it as a new record.
            self.poison += 1
            return
        sid = fact.sandbox_id
        if policy:
            self.keep_policy(Positioned(fact, topic, partition, offset))
        else:
            self.states[sid] = evolve(self.states.get(sid), fact)
            self.touched.add(sid)
        key = (fact.event_id, fact.occurred_at)
        if key in self.seen:
            self.duplicates += 1
            return
        if self.history_since is not None and fact.occurred_at < self.history_since:
            return
        self.seen.add(key)
        if self.keep_history:
            self.pending.append(HistoryFact(fact, topic, partition, offset))

    def keep_policy(self, read: Positioned) -> None:
        """A policy fact read: each partition is read in order, so the later one wins."""
        view = policy_view(read.fact)
        subject = read.fact.sandbox_id
        held = self.policies.get(subject)
        # As live: an amendment applies only to the policy still in force (the live store
        # compares with the row, which is what is held here: the subject's earlier facts were
        # read before it, from the same partition or the snapshot).
        in_force = held.fact.fact.event_id if held is not None else None
        if view.amends is not None and in_force not in (view.amends, read.fact.event_id):
            return
        self.policies[subject] = PolicyChange(subject, view.project_id, view.policy, read)

    def drain(self) -> list[HistoryFact]:
        rows, self.pending = self.pending, []
        return rows

    def take_touched(self) -> set[str]:
        touched, self.touched = self.touched, set()
        return touched
