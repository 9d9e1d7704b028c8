"""The read model's key layout on a Redis Cluster, without one: every script call and every
multi-key command stays in one slot (redis-py's own slot function), no script builds a key, the
shards spread, and the layouts before this one are told apart (marker, foreign keys)."""

from __future__ import annotations

import importlib
import re
from collections import Counter
from datetime import timedelta

import msgspec
import pytest
from redis.crc import key_slot

from sandbox_common.readmodel import Layout, Status, keys
from sandbox_common.readmodel.marker import Stale, judge
from sandbox_common.readmodel.shadow import swap_call
from sandbox_common.readmodel.writer import script_calls
from tests.unit.test_projection_rules import T0
from tests.unit.test_status_push import doc

LAYOUT = Layout(16)


def slots(names: list[str]) -> set[int]:
    return {key_slot(name.encode()) for name in names}


def test_each_document_write_call_touches_one_slot_and_every_shard_gets_its_own() -> None:
    docs = [
        msgspec.structs.replace(doc(revision=1), sandbox_id=f"sbx-{n}", project_id=f"p{n}")
        for n in range(400)
    ]
    calls = script_calls(LAYOUT, docs, tombstone_ttl_seconds=60, feed_length=1000)
    assert len(calls) == 16  # one per shard: 400 documents fit a chunk each
    assert all(len(slots(list(call_keys))) == 1 for call_keys, _ in calls)
    assert len({slot for call_keys, _ in calls for slot in slots(list(call_keys))}) == 16
    # Each call's documents are the ones of its shard, in the order of the entries.
    for call_keys, args in calls:
        entries = msgspec.json.decode(args[0])
        assert list(call_keys[5:]) == [LAYOUT.doc(e[3]) for e in entries]


def test_a_big_shard_is_written_in_chunks_each_in_the_shard() -> None:
    same_shard = [f"sbx-{n}" for n in range(40_000) if LAYOUT.shard(f"sbx-{n}") == 3][:1200]
    docs = [msgspec.structs.replace(doc(revision=1), sandbox_id=s) for s in same_shard]
    calls = script_calls(LAYOUT, docs, 60, 1000)
    assert len(calls) == 3
    assert len({slot for k, _ in calls for slot in slots(list(k))}) == 1


def test_a_shard_swap_and_its_pointer_swaps_stay_in_one_slot() -> None:
    ids = [f"sbx-{n}" for n in range(300) if LAYOUT.shard(f"sbx-{n}") == 5]
    call_keys, args = swap_call(LAYOUT, 5, ids[:10], ids[10:15], base=7)
    assert len(slots(list(call_keys))) == 1
    assert args[1:3] == [10, 5]
    # Project ids are the app's: braces anywhere, even first, must not move the hash tag
    # (`{}` or a leading `}` made Redis hash the whole key: live and shadow in two slots).
    for project in ("proj-{odd}name", "", "}x", "{}", "a}b", "{", "}{"):
        pointer = keys.project_sandbox(project)
        assert len(slots([pointer, keys.shadow(pointer)])) == 1, project
    assert len({keys.project_sandbox(p) for p in ("a{b", "ab", "{ab}", "a}b")}) == 4


def test_a_warning_goes_to_its_sandboxs_shard_with_its_marker() -> None:
    for sandbox in ("a", "sbx-77", "ünï"):
        shard = LAYOUT.shard(sandbox)
        assert len(slots([LAYOUT.pause_warned(sandbox, "idle:1"), LAYOUT.changes(shard)])) == 1
        assert len(slots([LAYOUT.doc(sandbox), *LAYOUT.indexes(shard)])) == 1


def test_the_shards_are_stable_and_spread_over_the_slots_and_the_fleet() -> None:
    # CRC-32: the same in every process and every version (Python's hash() is salted).
    assert [LAYOUT.shard(s) for s in ("sbx-1", "sbx-2", "abc")] == [7, 13, 2]
    counts = Counter(LAYOUT.shard(f"sbx-{n}") for n in range(16_000))
    assert min(counts.values()) > 800
    # A three-master cluster's default split (0-5460, 5461-10922, 10923-16383): each master
    # gets shards, none gets them all.
    masters = Counter(key_slot(LAYOUT.tag(s).strip("{}").encode()) * 3 // 16384 for s in LAYOUT.all)
    assert len(masters) == 3
    assert max(masters.values()) <= 8


def test_no_script_builds_a_key_inside_lua() -> None:
    """A key concatenated in Lua is invisible to the cluster's routing (and crosses slots)."""
    scripts = []
    for name in ("writer", "shadow", "feed", "reader", "coordination"):
        module = importlib.import_module(f"sandbox_common.readmodel.{name}")
        scripts += [
            value
            for value in vars(module).values()
            if isinstance(value, str) and "redis.call" in value
        ]
    assert len(scripts) >= 6
    for script in scripts:
        assert ".." not in script
        assert not re.search(r"redis\.call\('\w+', ARGV", script)


def test_keys_of_another_layout_are_foreign_and_this_ones_are_not() -> None:
    old = [
        "sbx:sandbox:s1",
        "sbx:idle-deadlines",
        "sbx:changes",
        "sbx:hard-ends",
        "sbx:transitional",
        "sbx:project:p1:sandbox",
        "sbx:pause-warned:s1:idle:9",
        Layout(8).doc("s1"),
        Layout(8).changes(2),
    ]
    assert all(LAYOUT.foreign(k) for k in old)
    ours = [
        LAYOUT.doc("s1"),
        LAYOUT.changes(2),
        LAYOUT.pause_warned("s1", "x"),
        keys.project_sandbox("p1"),
        keys.TICKER_LEASE,
        keys.READ_MODEL_MARKER,
        keys.seen_event("e1"),
        keys.E2B_BUDGET,
        keys.command_done("c"),
    ]
    assert not any(LAYOUT.foreign(k) for k in ours)
    assert re.fullmatch(
        LAYOUT.doc_pattern().replace("*", ".*").replace("{", r"\{"), LAYOUT.doc("s1")
    )


def test_the_marker_asks_for_a_rebuild_on_another_layout_or_another_primary() -> None:
    def marker(**fields: object) -> bytes:
        return msgspec.json.encode({"by": "projector", **fields})

    servers = ["a", "b", "c"]
    current = marker(layout=keys.LAYOUT_VERSION, shards=16, servers=servers)
    assert judge(current, LAYOUT, servers) is None
    assert judge(None, LAYOUT, servers) is Stale.MISSING
    # The marker of the unsharded layout (with its one server), and one of another shard count.
    assert judge(marker(server="a"), LAYOUT, servers) is Stale.LAYOUT
    assert judge(current, Layout(8), servers) is Stale.LAYOUT
    # One master failed over: its replica, promoted, has another replication id.
    assert judge(current, LAYOUT, ["a", "b", "d"]) is Stale.OTHER_SERVER
    assert judge(b"not json", LAYOUT, servers) is Stale.LAYOUT


def test_a_tombstone_is_written_in_its_shard_without_a_pointer() -> None:
    killed = msgspec.structs.replace(
        doc(Status.KILLED, revision=3), status_changed_at=T0 - timedelta(seconds=1)
    )
    ((call_keys, args),) = script_calls(LAYOUT, [killed], 60, 1000)
    (entry,) = msgspec.json.decode(args[0])
    assert entry[2] == "60"  # expires
    assert entry[4] == ""  # no live project: no pointer
    assert call_keys[5] == LAYOUT.doc(killed.sandbox_id)


def test_a_layout_needs_a_shard() -> None:
    with pytest.raises(ValueError, match="shard"):
        Layout(0)


def test_the_feed_as_a_whole_keeps_change_feed_max_length_changes() -> None:
    assert LAYOUT.stream_length(50_000) == 3_125
    assert Layout(3).stream_length(10) == 4
    assert Layout(16).stream_length(1) == 1
    ((_, args),) = script_calls(LAYOUT, [doc(revision=1)], 60, feed_length=50_000)
    assert args[1] == 3_125
