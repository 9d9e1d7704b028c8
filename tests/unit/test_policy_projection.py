"""Issue 17: policy facts through the live projector's snapshot records and replay's bulk fold,
and --verify's comparison of policies."""

from __future__ import annotations

import json

from projector import snapshots
from projector.adapters.postgres import policy_row
from projector.handlers import PolicyChange, Positioned
from projector.replay.fold import Rebuild
from projector.replay.pg_shadow import policy_compared
from projector.replay.verify import compare_policies
from sandbox_common import envelope as env
from sandbox_common.facts import Origin, policy_fact
from sandbox_common.policies import decode_policy
from tests.unit.test_projection_rules import T0, fact


def _policy(project: str | None, event_id: str, **fields: object) -> env.Envelope:
    policy = decode_policy(json.dumps(fields).encode())
    return policy_fact(project, policy, Origin(event_id, env.Source.ADMIN, T0), actor="ops")


def test_a_policy_record_round_trips_and_an_old_reader_cannot_take_it_for_a_watermark() -> None:
    fact_ = _policy("p1", "e1", idleTimeoutSeconds=600)
    batch = snapshots.outgoing([], {}, [("t", 4, 50)], [(fact_, 4, 41)])
    ((key, value),) = batch.states
    record = snapshots.decode(value)
    assert key == "policy:project:p1"
    assert record.schema_version == snapshots.POLICY_SCHEMA_VERSION > snapshots.SCHEMA_VERSION
    assert (record.partition, record.offset, record.policy) == (4, 42, fact_)
    snap = snapshots.Snapshot()
    for k, v in [*batch.states, *batch.watermarks]:
        snap.add(k.encode(), v)
    assert snap.policies == {"policy:project:p1": (fact_, 4, 41)}
    assert snap.watermarks == {4: 50}
    assert snap.states == {}


def test_the_bulk_fold_keeps_the_latest_policy_per_subject_apart_from_sandboxes() -> None:
    rebuild = Rebuild()
    rows = [
        _policy("p1", "e1", idleTimeoutSeconds=600),
        fact(env.FactType.CREATED, 0),
        _policy("p1", "e2", neverPause=True),
        _policy(None, "e3", warnBeforeSeconds=10),
    ]
    for offset, f in enumerate(rows):
        rebuild.add(env.encode(f), "t", 0, offset)
    bad = _policy("p2", "e4", idleTimeoutSeconds=600)
    rebuild.add(env.encode(bad).replace(b"600", b"1"), "t", 0, 9)  # out of range: poison
    assert set(rebuild.states) == {"sbx-1"}
    assert {s: c.fact.fact.event_id for s, c in rebuild.policies.items()} == {
        "policy:project:p1": "e2",
        "policy:default": "e3",
    }
    assert rebuild.poison == 1
    assert len(rebuild.drain()) == 4  # the policy facts are history too


def test_verify_names_a_policy_that_differs_or_exists_on_one_side_only() -> None:
    change = PolicyChange(
        "policy:project:p1",
        "p1",
        decode_policy(b'{"idleTimeoutSeconds": 600}'),
        Positioned(_policy("p1", "e1", idleTimeoutSeconds=600), "t", 0, 3),
    )
    row = policy_compared(policy_row(change))
    assert compare_policies({"policy:project:p1": row}, {"policy:project:p1": row}) == []
    other = (*row[:2], {"idleTimeoutSeconds": 900}, *row[3:])
    assert len(compare_policies({"policy:project:p1": row}, {"policy:project:p1": other})) == 1
    assert len(compare_policies({"policy:project:p1": row}, {})) == 1
    assert len(compare_policies({}, {"policy:default": row})) == 1


def test_the_bulk_fold_takes_an_amendment_as_the_live_projector_does() -> None:
    from tests.unit.test_projector_batches import AMENDMENT_STEPS, IN_FORCE_AFTER

    rebuild = Rebuild()
    offset = 0
    for step, want in zip(AMENDMENT_STEPS, IN_FORCE_AFTER, strict=True):
        for f in step:
            rebuild.add(env.encode(f), "t", 0, offset)
            offset += 1
        assert rebuild.policies["policy:project:p1"].fact.fact.event_id == want
