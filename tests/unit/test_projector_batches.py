"""project_batch with in-memory stores: ordering of writes, revisions, dead letters."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import msgspec
import pytest

from projector.domain import SandboxState
from projector.handlers import (
    Poison,
    PolicyChange,
    Positioned,
    Projected,
    Projection,
    ReadModel,
    StateStore,
    project_batch,
)
from projector.metrics import OTHER_TYPE, fact_type_label
from sandbox_common import envelope as env
from sandbox_common.dead_letters import Record
from sandbox_common.envelope import FactType
from sandbox_common.facts import Origin, policy_fact
from sandbox_common.policies import decode_policy
from sandbox_common.readmodel import DeadlineRule, Status
from tests.unit.test_projection_rules import T0, fact


@dataclass
class MemoryStore:
    rows: dict[str, tuple[SandboxState, int]] = field(default_factory=dict)
    history: dict[str, Positioned] = field(default_factory=dict)
    policies: dict[str, PolicyChange] = field(default_factory=dict)
    fail: bool = False

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[MemoryStore]:
        yield self

    async def load(self, ids: Sequence[str]) -> dict[str, tuple[SandboxState, int]]:
        return {i: self.rows[i] for i in ids if i in self.rows}

    async def save(
        self,
        changed: Sequence[Projected],
        facts: Sequence[Positioned],
        offsets: Sequence[tuple[str, int, int]],
        policies: Sequence[PolicyChange] = (),
    ) -> frozenset[str]:
        if self.fail:
            raise ConnectionError("postgres down")
        for p in changed:
            self.rows[p.state.sandbox_id] = (p.state, p.revision)
        for f in facts:
            self.history.setdefault(f.fact.event_id, f)
        refused = set()
        for c in policies:  # the amendment check and the position guard of the table
            held = self.policies.get(c.subject)
            in_force = held.fact.fact.event_id if held else None
            if c.amends is not None and in_force not in (c.amends, c.fact.fact.event_id):
                refused.add(c.subject)
            elif held is None or held.fact.offset < c.fact.offset:
                self.policies[c.subject] = c
        return frozenset(refused)


@dataclass
class MemoryReadModel:
    docs: dict[str, tuple[SandboxState, int]] = field(default_factory=dict)

    async def publish(self, projected: Sequence[Projected]) -> None:
        for p in projected:
            held = self.docs.get(p.state.sandbox_id)
            if held is None or held[1] < p.revision:
                self.docs[p.state.sandbox_id] = (p.state, p.revision)


@dataclass
class MemoryDeadLetters:
    """The outbox: dead letters, and the facts a batch derived."""

    sent: list[Poison] = field(default_factory=list)
    published: list[env.Envelope] = field(default_factory=list)

    async def send(self, record: Record, reason: str) -> None:
        self.sent.append(Poison(record, reason))

    async def publish(self, fact: env.Envelope) -> None:
        self.published.append(fact)


RULE = DeadlineRule(180)


def to(store: StateStore, rm: ReadModel, outbox: MemoryDeadLetters) -> Projection:
    return Projection(store, rm, outbox, RULE)


def records(*facts: env.Envelope | bytes) -> list[Record]:
    return [
        Record("sandbox-lifecycle", 0, i, f if isinstance(f, bytes) else env.encode(f))
        for i, f in enumerate(facts)
    ]


async def test_batch_lands_in_both_stores_and_revisions_grow() -> None:
    store, rm, dlq = MemoryStore(), MemoryReadModel(), MemoryDeadLetters()
    await project_batch(records(fact(FactType.CREATED, 0)), to(store, rm, dlq))
    out = await project_batch(records(fact(FactType.PAUSED, 5)), to(store, rm, dlq))
    assert [p.revision for p in out.changed] == [2]
    assert rm.docs["sbx-1"][0].status is Status.PAUSED
    assert len(store.history) == 2


async def test_redelivered_batch_changes_nothing() -> None:
    store, rm, dlq = MemoryStore(), MemoryReadModel(), MemoryDeadLetters()
    batch = records(fact(FactType.CREATED, 0), fact(FactType.PAUSED, 5))
    await project_batch(batch, to(store, rm, dlq))
    again = await project_batch(batch, to(store, rm, dlq))
    assert again.changed == []
    assert store.rows["sbx-1"][1] == 1
    assert len(store.history) == 2


async def test_a_pause_that_lands_is_logged_once_as_the_seed_did(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, rm, dlq = MemoryStore(), MemoryReadModel(), MemoryDeadLetters()
    paused = records(fact(FactType.CREATED, 0), fact(FactType.PAUSED, 5))
    with caplog.at_level(logging.INFO, logger="projector.handlers"):
        await project_batch(paused, to(store, rm, dlq))
        await project_batch(paused, to(store, rm, dlq))  # re-delivered: nothing new
        await project_batch(records(fact(FactType.UPDATED, 6)), to(store, rm, dlq))  # still PAUSED
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Marked")]
    assert lines == ["Marked sandbox sbx-1 as PAUSED (project: p1)"]


async def test_a_flap_is_published_once_as_a_fact_before_the_batch_is_stored() -> None:
    store, rm, outbox = MemoryStore(), MemoryReadModel(), MemoryDeadLetters()
    ours = env.Source.ENFORCER
    flapped = records(
        fact(FactType.CREATED, 0),
        fact(FactType.PAUSED, 200, event_id="p1", source=ours, reason="idle"),
        fact(FactType.RESUMED, 230),  # a probe woke it 30 s after our idle pause
    )
    await project_batch(flapped, to(store, rm, outbox))
    (flap,) = outbox.published
    assert (flap.type, flap.source, flap.sandbox_id) == (
        FactType.FLAPPING,
        env.Source.PROJECTOR,
        "sbx-1",
    )
    assert flap.event_id == f"flap:sbx-1:{(T0 + timedelta(seconds=200)).isoformat()}"
    assert flap.data["flaps"] == 1
    assert flap.data["idle_backoff"] == 1
    await project_batch(flapped, to(store, rm, outbox))  # delivered again: nothing new
    again = records(
        fact(FactType.PAUSED, 500, event_id="p2", source=ours, reason="idle"),
        fact(FactType.RESUMED, 520),
    )
    await project_batch(again, to(store, rm, outbox))
    assert [f.data["flaps"] for f in outbox.published] == [1, 2]
    assert outbox.published[1].data["idle_backoff"] == 2
    # Published before the batch is stored: a store that fails after cannot lose it (the batch
    # is retried and publishes the same id again, which the history keeps once).
    early = MemoryDeadLetters()
    with pytest.raises(ConnectionError):
        await project_batch(flapped, to(MemoryStore(fail=True), rm, early))
    assert [f.event_id for f in early.published] == [flap.event_id]


async def test_poison_goes_to_dead_letters_and_the_rest_is_projected() -> None:
    store, rm, dlq = MemoryStore(), MemoryReadModel(), MemoryDeadLetters()
    await project_batch(records(b"{not json", fact(FactType.CREATED, 0)), to(store, rm, dlq))
    assert len(dlq.sent) == 1
    assert dlq.sent[0].record.offset == 0
    assert "not a sandbox-lifecycle envelope" in dlq.sent[0].reason
    assert "sbx-1" in store.rows


async def test_store_failure_raises_and_leaves_redis_untouched() -> None:
    store, rm, dlq = MemoryStore(fail=True), MemoryReadModel(), MemoryDeadLetters()
    with pytest.raises(ConnectionError):
        await project_batch(records(fact(FactType.CREATED, 0)), to(store, rm, dlq))
    assert rm.docs == {}


def test_the_state_cache_keeps_what_was_committed_and_forgets_on_request() -> None:
    from projector.adapters.postgres import StateCache
    from projector.domain import SandboxState
    from projector.handlers import Projected

    cache = StateCache(2)
    states = [SandboxState(sandbox_id=f"s{i}") for i in range(3)]
    cache.put(Projected(s, 1) for s in states[:2])
    assert cache.get("s0") == (states[0], 1)  # now the most recently used
    cache.put([Projected(states[2], 4)])
    assert cache.get("s1") is None  # the least recently used went
    assert cache.get("s2") == (states[2], 4)
    cache.clear()
    assert cache.get("s0") is None
    off = StateCache(0)
    off.put([Projected(states[0], 1)])
    assert off.get("s0") is None


def test_fact_types_we_do_not_know_share_one_metric_label() -> None:
    assert fact_type_label(FactType.PAUSED) == "sandbox.lifecycle.paused"
    assert fact_type_label("sandbox.lifecycle.checkpointed") == "sandbox.lifecycle.checkpointed"
    assert fact_type_label("\U0001f600 made up") == OTHER_TYPE


def _policy(project: str | None, offset_id: str, **fields: object) -> env.Envelope:
    policy = decode_policy(json.dumps(fields).encode())
    return policy_fact(project, policy, Origin(offset_id, env.Source.ADMIN, T0), actor="admin")


async def test_a_policy_fact_is_kept_apart_from_sandboxes_the_latest_per_subject() -> None:
    store, rm, dlq = MemoryStore(), MemoryReadModel(), MemoryDeadLetters()
    batch = records(
        _policy("p1", "e1", idleTimeoutSeconds=600),
        fact(FactType.CREATED, 0),
        _policy("p1", "e2", idleTimeoutSeconds=900, neverPause=True),
        _policy(None, "e3", warnBeforeSeconds=60),
    )
    out = await project_batch(batch, to(store, rm, dlq))
    assert [p.state.sandbox_id for p in out.changed] == ["sbx-1"]  # no sandbox "policy:..."
    assert set(store.rows) == {"sbx-1"}
    assert set(rm.docs) == {"sbx-1"}
    project, default = store.policies["policy:project:p1"], store.policies["policy:default"]
    assert (project.project_id, project.fact.fact.event_id) == ("p1", "e2")
    assert (project.policy.idle_timeout_seconds, project.policy.never_pause) == (900, True)
    assert (default.project_id, default.policy.warn_before_seconds) == (None, 60)
    assert len(store.history) == 4  # the policy facts are history too
    # Delivered again after a crash: nothing goes back to the first policy.
    await project_batch(batch[:1], to(store, rm, dlq))
    assert store.policies["policy:project:p1"].fact.fact.event_id == "e2"


async def test_an_unusable_policy_fact_is_dead_lettered_with_its_reason() -> None:
    store, rm, dlq = MemoryStore(), MemoryReadModel(), MemoryDeadLetters()
    good = _policy("p1", "e1", idleTimeoutSeconds=600)
    bad = msgspec.structs.replace(
        good, event_id="e2", data={**good.data, "policy": {"idleTimeoutSeconds": 1}}
    )
    nameless = msgspec.structs.replace(good, event_id="e3", project_id=None)
    await project_batch(records(bad, nameless, good), to(store, rm, dlq))
    reasons = [p.reason for p in dlq.sent]
    assert len(reasons) == 2
    assert reasons[0].startswith("idleTimeoutSeconds:"), reasons
    assert "names no project" in reasons[1], reasons
    assert store.policies["policy:project:p1"].fact.fact.event_id == "e1"


ADAPTIVE = {"idle": {"mode": "adaptive", "minSeconds": 60, "maxSeconds": 900}}
LEARNED = {
    "seconds": 120,
    "at": "2026-01-01T00:00:00+00:00",
    "since": "2025-12-18T00:00:00+00:00",
    "gaps": 50,
    "pauses": 5,
    "regrets": 0,
    "why": "test",
}


def amendment(project: str, event_id: str, amends: str) -> env.Envelope:
    policy = decode_policy(json.dumps({"idle": {**ADAPTIVE["idle"], "learned": LEARNED}}).encode())
    origin = Origin(event_id, env.Source.ENFORCER, T0)
    return policy_fact(project, policy, origin, actor="adaptive-idle", amends=amends)


def from_offset(start: int, *facts: env.Envelope) -> list[Record]:
    return [Record("sandbox-lifecycle", 0, start + i, env.encode(f)) for i, f in enumerate(facts)]


@dataclass
class AppliedPolicies:
    subjects: list[str] = field(default_factory=list)

    async def applied(self, changes: Sequence[PolicyChange]) -> None:
        self.subjects.extend(c.fact.fact.event_id for c in changes)


AMENDMENT_STEPS = [
    [_policy("p1", "e1", **ADAPTIVE)],
    [amendment("p1", "l1", "e1")],  # amends the one in force: applied
    [_policy("p1", "e2", idleTimeoutSeconds=600)],  # the admin's change
    [amendment("p1", "l2", "l1")],  # read before e2 landed: refused
    [_policy("p1", "e3", **ADAPTIVE), amendment("p1", "l3", "e2")],  # stale within a batch
    [_policy("p1", "e4", **ADAPTIVE), amendment("p1", "l4", "e4")],  # amends the batch's own
    [amendment("p1", "l4", "e4")],  # the same amendment again (republished): in force already
]
IN_FORCE_AFTER = ["e1", "l1", "e2", "e2", "e3", "l4", "l4"]


async def test_an_amendment_applies_only_while_the_policy_it_amends_is_in_force() -> None:
    store, rm, dlq, told = MemoryStore(), MemoryReadModel(), MemoryDeadLetters(), AppliedPolicies()
    projection = Projection(store, rm, dlq, RULE, policies=told)
    offset = 0
    for step, want in zip(AMENDMENT_STEPS, IN_FORCE_AFTER, strict=True):
        await project_batch(from_offset(offset, *step), projection)
        offset += len(step)
        assert store.policies["policy:project:p1"].fact.fact.event_id == want
    # Refused amendments are history, never applied (nor in the state topic).
    assert {"l2", "l3"} <= set(store.history)
    assert told.subjects == ["e1", "l1", "e2", "e3", "l4", "l4"]
