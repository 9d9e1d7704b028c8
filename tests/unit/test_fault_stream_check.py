"""The scale test's SSE check (tests/faults/streams.py) must catch a client that missed, doubled
or reordered a change; it only ever runs on a full cluster, so its logic is checked here."""

from __future__ import annotations

from tests.connected.helpers import Event
from tests.faults.streams import Shown, differences, shown_in_stream


def _sandbox(sid: str, status: str, active: str) -> Event:
    data = {"sandboxId": sid, "status": status, "lastActiveAt": active, "statusChangedAt": None}
    return Event("sandbox", "1", data, 0.0)


FEED = {
    "a": [
        Shown("sandbox", "RUNNING", "t1", None),
        Shown("sandbox", "PAUSED", "t1", None),
        Shown("gone", None, None, None),
    ]
}
EVENTS = [
    _sandbox("a", "RUNNING", "t1"),
    Event("pauseImminent", "2", {"sandboxId": "a"}, 0.0),  # a warning: not a change
    _sandbox("b", "RUNNING", "t0"),  # not watched
    _sandbox("a", "PAUSED", "t1"),
    Event("gone", "3", {"projectId": "p", "sandboxId": "a"}, 0.0),
]


def test_a_client_shown_every_change_in_order_passes() -> None:
    assert differences(FEED, shown_in_stream(EVENTS), {"a"}) == []


def test_a_missed_a_doubled_or_a_reordered_change_is_reported() -> None:
    missed = [e for i, e in enumerate(EVENTS) if i != 3]
    doubled = [*EVENTS[:4], EVENTS[3], EVENTS[4]]
    reordered = [EVENTS[3], EVENTS[0], EVENTS[4]]
    for events in (missed, doubled, reordered, []):
        assert differences(FEED, shown_in_stream(events), {"a"}) != [], events


def test_a_watched_sandbox_the_feed_never_had_must_not_be_shown() -> None:
    assert differences({}, shown_in_stream(EVENTS), {"b"}) != []
    assert differences({}, shown_in_stream(EVENTS), {"c"}) == []
