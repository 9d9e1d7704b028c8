"""The command path's bookkeeping (enforcer.actuator.lanes): the committed offset never passes an
unfinished command, and one sandbox's commands come out in order, one at a time."""

from __future__ import annotations

import random
from collections import defaultdict

import pytest
from hypothesis import given
from hypothesis import strategies as st

from enforcer.actuator.lanes import Lanes, PartitionOffsets, Watermarks


def test_the_watermark_waits_for_the_oldest_unfinished_offset() -> None:
    marks: Watermarks[int] = Watermarks()
    for offset in (10, 11, 12):
        marks.offer(0, offset)
    marks.finish(0, 11)
    marks.finish(0, 12)
    assert marks.to_commit() == {0: 10}
    assert marks.unfinished == 1
    marks.finish(0, 10)
    assert marks.to_commit() == {0: 13}


def test_only_moved_watermarks_are_committed_again() -> None:
    marks: Watermarks[str] = Watermarks()
    marks.offer("a", 0)
    marks.offer("b", 0)
    marks.finish("a", 0)
    marks.committed(marks.to_commit())
    assert marks.to_commit() == {}
    marks.finish("b", 0)
    assert marks.to_commit() == {"b": 1}


def test_a_revoked_partition_is_forgotten_and_its_late_finish_ignored() -> None:
    marks: Watermarks[int] = Watermarks()
    marks.offer(3, 5)
    marks.forget([3])
    marks.finish(3, 5)
    assert (marks.to_commit(), marks.unfinished) == ({}, 0)


def test_offsets_go_forward_only() -> None:
    offsets = PartitionOffsets()
    offsets.offer(7)
    with pytest.raises(ValueError, match="handed out after 7"):
        offsets.offer(6)


@given(
    st.lists(st.integers(min_value=0, max_value=3), min_size=1, max_size=60),
    st.randoms(use_true_random=False),
)
def test_the_committed_offset_never_passes_an_unfinished_record(
    partitions: list[int], rnd: random.Random
) -> None:
    """Records handed out over a few partitions, finished in any order, with a commit after
    each step: every committed offset has all records below it finished, and at the end the
    whole partition is committed."""
    marks: Watermarks[int] = Watermarks()
    next_offset: dict[int, int] = defaultdict(int)
    handed: list[tuple[int, int]] = []
    for partition in partitions:
        offset = next_offset[partition]
        next_offset[partition] += 1 + rnd.randint(0, 2)  # gaps: compacted or transactional
        marks.offer(partition, offset)
        handed.append((partition, offset))
    order = handed[:]
    rnd.shuffle(order)
    finished: set[tuple[int, int]] = set()
    for partition, offset in order:
        marks.finish(partition, offset)
        finished.add((partition, offset))
        commit = marks.to_commit()
        marks.committed(commit)
        for p, mark in commit.items():
            below = [(p, o) for (q, o) in handed if q == p and o < mark]
            assert all(r in finished for r in below)
            unfinished = [o for (q, o) in handed if q == p and (q, o) not in finished]
            last = max(o for (q, o) in handed if q == p)
            assert mark == (min(unfinished) if unfinished else last + 1)
        assert marks.unfinished == len(handed) - len(finished)
    assert marks.unfinished == 0


@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers()), max_size=40), st.data())
def test_one_sandbox_runs_one_command_at_a_time_in_order(
    arrivals: list[tuple[str, int]], data: st.DataObject
) -> None:
    lanes: Lanes[str, int] = Lanes()
    running: dict[str, int] = {}
    ran: dict[str, list[int]] = defaultdict(list)
    pending = list(arrivals)
    while pending or running:
        # Either the next record arrives, or a running command (any lane) finishes.
        if pending and (not running or data.draw(st.booleans())):
            key, item = pending.pop(0)
            if lanes.add(key, item):
                assert key not in running
                running[key] = item
        else:
            key = data.draw(st.sampled_from(sorted(running)))
            ran[key].append(running.pop(key))
            following = lanes.next(key)
            if following is not None:
                running[key] = following
    for key in "abc":
        assert ran[key] == [item for k, item in arrivals if k == key]
    assert len(lanes) == 0
