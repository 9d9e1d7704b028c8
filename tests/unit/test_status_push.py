"""status-api's push and caching rules without Redis: rate limits, ETags, pause warnings, the
per-client SSE filter, the change feed's entry shape, cursors and the fast lane."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import msgspec
import pytest
from litestar.exceptions import ValidationException
from redis.exceptions import ConnectionError as RedisConnectionError

from sandbox_common.policies import Policy, PolicyBook
from sandbox_common.rate_limit import RateLimiter
from sandbox_common.readmodel import Layout, Status, StatusDoc, encode_doc
from sandbox_common.readmodel import feed as changes
from sandbox_common.readmodel.feed import Warning as DueWarning
from status_api import http_cache
from status_api.access import Gate
from status_api.auth import Claims, TokenVerifier, mint
from status_api.deadline_warnings import DeadlineWarner, warning_for, watches
from status_api.fast_lane import FastLane
from status_api.routes.operators import decode_cursor, encode_cursor, storable
from status_api.routes.streams import _Sender
from status_api.views import WarnWindows, sandbox_status
from status_api.warn_policy import WarnPolicy
from tests.unit.test_projection_rules import T0

WARN = timedelta(seconds=30)
WINDOWS = WarnWindows(pause=WARN, lifetime=timedelta(seconds=300))
PAUSE_WATCH, LIFETIME_WATCH, DELETE_WATCH = watches(WINDOWS)


def doc(
    status: Status = Status.RUNNING,
    deadline_in: float | None = 20,
    revision: int = 1,
    sandbox: str = "sbx-1",
    project: str | None = "p1",
) -> StatusDoc:
    return StatusDoc(
        sandbox_id=sandbox,
        project_id=project,
        status=status,
        last_active_at=T0,
        status_changed_at=T0,
        idle_deadline_at=T0 + timedelta(seconds=deadline_in) if deadline_in is not None else None,
        revision=revision,
    )


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_token_gets_a_burst_of_twice_its_rate_then_waits() -> None:
    clock = Clock()
    limiter = RateLimiter(5, clock)
    assert [limiter.retry_after("t") for _ in range(10)] == [0.0] * 10
    assert limiter.retry_after("t") == pytest.approx(0.2)
    assert limiter.retry_after("other") == 0.0  # per token
    clock.now += 0.2
    assert limiter.retry_after("t") == 0.0
    assert limiter.retry_after("t") > 0


def test_a_zero_rate_limits_nothing() -> None:
    limiter = RateLimiter(0, Clock())
    assert not limiter.enabled
    assert all(limiter.retry_after("t") == 0.0 for _ in range(1000))


def test_the_etag_changes_with_revision_warning_and_sandbox() -> None:
    tag = http_cache.etag("sbx-1", 3, False)
    assert tag.startswith('"')
    assert tag.endswith('"')
    assert len({tag, http_cache.etag("sbx-1", 4, False), http_cache.etag("sbx-1", 3, True)}) == 3
    assert http_cache.etag("sbx-2", 3, False) != tag
    assert http_cache.matches(tag, tag)
    assert http_cache.matches(f'"x", W/{tag}', tag)
    assert http_cache.matches("*", tag)
    assert not http_cache.matches(None, tag)
    assert not http_cache.matches('"other"', tag)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (Status.RUNNING, "private, max-age=30"),
        (Status.STARTING, "private, max-age=5"),
        (Status.PAUSING, "private, max-age=5"),
        (Status.PAUSED, "private, no-cache"),
    ],
)
def test_cache_control_follows_poll_after_ms(status: Status, expected: str) -> None:
    assert http_cache.cache_control(status) == expected


def test_a_warning_is_due_only_for_a_running_sandbox_inside_the_window() -> None:
    warning = warning_for(doc(deadline_in=20), T0, WARN)
    assert warning is not None
    assert warning.seconds_left == 20
    assert warning_for(doc(deadline_in=31), T0, WARN) is None
    assert warning_for(doc(Status.PAUSING), T0, WARN) is None
    assert warning_for(doc(deadline_in=None), T0, WARN) is None
    late = warning_for(doc(deadline_in=-3), T0, WARN)
    assert late is not None
    assert late.seconds_left == 0


@dataclass
class FakeRedis:
    docs: dict[str, StatusDoc] = field(default_factory=dict)
    markers: set[str] = field(default_factory=set)
    sent: list[bytes] = field(default_factory=list)

    async def deadlines_between(self, low: float, high: float) -> list[tuple[str, float]]:
        return [
            (d.sandbox_id, d.idle_deadline_at.timestamp())
            for d in self.docs.values()
            if d.idle_deadline_at and low <= d.idle_deadline_at.timestamp() <= high
        ]

    async def hard_ends_between(self, low: float, high: float) -> list[tuple[str, float]]:
        return [
            (d.sandbox_id, d.max_lifetime_at.timestamp())
            for d in self.docs.values()
            if d.max_lifetime_at and low <= d.max_lifetime_at.timestamp() <= high
        ]

    async def deletes_between(self, low: float, high: float) -> list[tuple[str, float]]:
        return [
            (d.sandbox_id, d.delete_at.timestamp())
            for d in self.docs.values()
            if d.delete_at and low <= d.delete_at.timestamp() <= high
        ]

    async def by_sandbox(self, sandbox_id: str) -> StatusDoc | None:
        return self.docs.get(sandbox_id)

    async def by_sandboxes(self, sandbox_ids: Sequence[str]) -> list[StatusDoc | None]:
        return [self.docs.get(s) for s in sandbox_ids]

    async def warn_once(self, warnings: Sequence[DueWarning], ttl: int) -> list[bool]:
        answers = []
        for w in warnings:
            marker = f"{w.sandbox_id}:{w.deadline_key}"
            answers.append(marker not in self.markers)
            if answers[-1]:
                self.markers.add(marker)
                self.sent.append(w.payload)
        return answers


async def test_the_warner_warns_once_per_deadline_and_again_for_a_moved_one() -> None:
    redis = FakeRedis(
        {"sbx-1": doc(deadline_in=20), "sbx-far": doc(sandbox="sbx-far", deadline_in=90)}
    )
    now = [T0]
    warner = DeadlineWarner(redis, redis, PAUSE_WATCH, lambda: now[0])
    assert await warner.run_once() == 1
    assert await warner.run_once() == 0
    # Another replica (its own memory, the same Redis) does not send it again either.
    assert await DeadlineWarner(redis, redis, PAUSE_WATCH, lambda: now[0]).run_once() == 0
    redis.docs["sbx-1"] = doc(deadline_in=45, revision=2)  # activity moved the deadline
    now[0] = T0 + timedelta(seconds=20)
    assert await warner.run_once() == 1
    sent = [msgspec.json.decode(p) for p in redis.sent]
    assert [w["sandboxId"] for w in sent] == ["sbx-1", "sbx-1"]
    assert sent[0]["idleDeadlineAt"] != sent[1]["idleDeadlineAt"]


def lead_times() -> WarnPolicy:
    """p-early is warned 120 s ahead, p-silent never; every other project as the default says
    (none: the setting's 30 s)."""
    book = PolicyBook.of(
        [
            ("p-early", Policy(warn_before_seconds=120)),
            ("p-silent", Policy(warn_before_seconds=0)),
        ]
    )
    return WarnPolicy(WINDOWS, lambda: book)


def test_a_policys_warn_before_sets_its_projects_pause_lead_time() -> None:
    warn = lead_times()
    assert warn.windows("p-early").pause == timedelta(seconds=120)
    assert warn.windows("p-silent").pause == timedelta(0)
    assert warn.windows("p1") is WINDOWS
    assert warn.windows(None) is WINDOWS
    assert warn.widest().pause == timedelta(seconds=120)
    # The other lead times stay the settings'.
    assert warn.windows("p-early").lifetime == WINDOWS.lifetime
    early = doc(deadline_in=100, project="p-early")
    assert sandbox_status(early, T0, warn.windows("p-early")).pause_imminent
    assert not sandbox_status(early, T0, warn.windows("p1")).pause_imminent
    # 0: not even once the deadline has passed (the enforcer's tick is on its way).
    late = doc(deadline_in=-1, project="p-silent")
    assert not sandbox_status(late, T0, warn.windows("p-silent")).pause_imminent
    # A default's lead time governs the projects without their own.
    defaulted = WarnPolicy(WINDOWS, lambda: PolicyBook(Policy(warn_before_seconds=60)))
    assert defaulted.windows("p1").pause == timedelta(seconds=60)


async def test_the_warner_warns_each_project_its_own_lead_time_ahead() -> None:
    redis = FakeRedis(
        {
            "early": doc(sandbox="early", project="p-early", deadline_in=100),
            "usual": doc(sandbox="usual", project="p1", deadline_in=100),
            "silent": doc(sandbox="silent", project="p-silent", deadline_in=100),
        }
    )
    now = [T0]
    warner = DeadlineWarner(redis, redis, PAUSE_WATCH, lambda: now[0], warn=lead_times())
    assert await warner.run_once() == 1  # 100 s ahead: only p-early's lead time reaches
    sent = [msgspec.json.decode(p)["sandboxId"] for p in redis.sent]
    assert sent == ["early"]
    now[0] = T0 + timedelta(seconds=75)  # 25 s left: inside the setting's 30 s
    assert await warner.run_once() == 1
    now[0] = T0 + timedelta(seconds=99)
    assert await warner.run_once() == 0
    sent = [msgspec.json.decode(p)["sandboxId"] for p in redis.sent]
    assert sent == ["early", "usual"]  # p-silent's warnBeforeSeconds is 0


async def test_a_warning_the_feed_did_not_take_is_sent_the_next_round() -> None:
    class Failing(FakeRedis):
        failures = 1

        async def warn_once(self, warnings: Sequence[DueWarning], ttl: int) -> list[bool]:
            if self.failures:
                self.failures -= 1
                raise RedisConnectionError("Redis went away")
            return await super().warn_once(warnings, ttl)

    redis = Failing({"sbx-1": doc(deadline_in=20)})
    warner = DeadlineWarner(redis, redis, PAUSE_WATCH, lambda: T0, warn=lead_times())
    with pytest.raises(RedisConnectionError):
        await warner.run_once()
    assert await warner.run_once() == 1


def test_a_stream_snapshot_warns_as_the_projects_policy_says() -> None:
    s = sender(project_id="p-early", warn=lead_times())
    shown = s.snapshot(doc(deadline_in=100, project="p-early"), "p-early", "1-0")
    assert [m.event for m in shown] == ["sandbox", "pauseImminent"]
    quiet = sender(project_id="p-silent", warn=lead_times())
    shown = quiet.snapshot(doc(deadline_in=5, project="p-silent"), "p-silent", "1-0")
    assert [m.event for m in shown] == ["sandbox"]


async def test_the_lifetime_warner_warns_once_per_run_apart_from_pause_warnings() -> None:
    ending = msgspec.structs.replace(
        doc(deadline_in=20), max_lifetime_at=T0 + timedelta(seconds=200)
    )
    redis = FakeRedis({"sbx-1": ending})
    lifetime = DeadlineWarner(redis, redis, LIFETIME_WATCH, lambda: T0)
    pause = DeadlineWarner(redis, redis, PAUSE_WATCH, lambda: T0)
    # Same sandbox, two deadlines: each warned about once, neither hiding the other.
    assert await lifetime.run_once() == 1
    assert await pause.run_once() == 1
    assert await DeadlineWarner(redis, redis, LIFETIME_WATCH, lambda: T0).run_once() == 0
    sent = [msgspec.json.decode(p) for p in redis.sent]
    assert sent[0] == {
        "sandboxId": "sbx-1",
        "projectId": "p1",
        "maxLifetimeAt": (T0 + timedelta(seconds=200)).isoformat().replace("+00:00", "Z"),
        "secondsLeft": 200,
    }
    assert "idleDeadlineAt" in sent[1]
    # Outside the window (300 s): nothing.
    far = msgspec.structs.replace(ending, max_lifetime_at=T0 + timedelta(seconds=400))
    assert LIFETIME_WATCH.warning(far, T0) is None
    assert LIFETIME_WATCH.warning(msgspec.structs.replace(ending, status=Status.PAUSED), T0) is None


async def test_a_paused_sandbox_a_policy_deletes_is_warned_about_once_before() -> None:
    paused = msgspec.structs.replace(
        doc(deadline_in=20),
        status=Status.PAUSED,
        idle_deadline_at=None,
        delete_at=T0 + timedelta(seconds=1800),
    )
    redis = FakeRedis({"sbx-1": paused})
    warner = DeadlineWarner(redis, redis, DELETE_WATCH, lambda: T0)
    assert await warner.run_once() == 1
    assert await DeadlineWarner(redis, redis, DELETE_WATCH, lambda: T0).run_once() == 0
    assert msgspec.json.decode(redis.sent[0]) == {
        "sandboxId": "sbx-1",
        "projectId": "p1",
        "deleteAt": (T0 + timedelta(seconds=1800)).isoformat().replace("+00:00", "Z"),
        "secondsLeft": 1800,
    }
    # Resumed meanwhile: no warning for a RUNNING one; two hours ahead: not yet.
    assert DELETE_WATCH.warning(msgspec.structs.replace(paused, status=Status.RUNNING), T0) is None
    later = msgspec.structs.replace(paused, delete_at=T0 + timedelta(hours=2))
    assert DELETE_WATCH.warning(later, T0) is None
    assert sandbox_status(paused, T0, WINDOWS).delete_at == T0 + timedelta(seconds=1800)


def test_the_status_shows_the_hard_end_and_flags_it_inside_the_window() -> None:
    ending = msgspec.structs.replace(
        doc(deadline_in=100), max_lifetime_at=T0 + timedelta(seconds=200)
    )
    shown = sandbox_status(ending, T0, WINDOWS)
    assert shown.max_lifetime_at == T0 + timedelta(seconds=200)
    assert shown.lifetime_end_imminent
    assert not shown.pause_imminent
    later = msgspec.structs.replace(ending, max_lifetime_at=T0 + timedelta(seconds=900))
    assert not sandbox_status(later, T0, WINDOWS).lifetime_end_imminent
    # The flag is part of the body, so of the validator too.
    assert http_cache.etag("sbx-1", 3, False, True) != http_cache.etag("sbx-1", 3, False)


def change(
    entry: str,
    kind: changes.ChangeKind,
    data: bytes,
    revision: int = 1,
    sandbox: str = "sbx-1",
    shard: int = 0,
) -> changes.Change:
    return changes.Change(entry, shard, kind, "p1", sandbox, revision, data)


def at(*entries: str) -> changes.Cursor:
    """A cursor at these entry ids, one per shard."""
    return changes.Cursor(tuple(changes.entry_position(e) for e in entries))


def sender(
    shards: int = 1, project_id: str | None = "p1", warn: WarnPolicy | None = None
) -> _Sender:
    hub = type("H", (), {"head": changes.Cursor.start(shards)})()
    warn = warn or WarnPolicy(WINDOWS)
    deps: Any = type("D", (), {"clock": staticmethod(lambda: T0), "warn": warn, "hub": hub})()
    return _Sender(deps, project_id)


def test_a_client_is_sent_each_revision_once_in_feed_order() -> None:
    s = sender()
    first = s.snapshot(doc(revision=2, deadline_in=100), "p1", at("5-0").encode())
    assert [m.event for m in first] == ["sandbox"]
    s.start_at(at("5-0"))
    assert s.change(change("4-0", changes.ChangeKind.DOC, encode_doc(doc(revision=3)))) is None
    assert s.change(change("6-0", changes.ChangeKind.DOC, encode_doc(doc(revision=2)))) is None
    paused = doc(Status.PAUSED, revision=3)
    message = s.change(change("7-0", changes.ChangeKind.DOC, encode_doc(paused), revision=3))
    assert message is not None
    assert message.event == "sandbox"
    assert message.id == at("7-0").encode()
    killed = doc(Status.KILLED, revision=4)
    gone = s.change(change("8-0", changes.ChangeKind.DOC, encode_doc(killed), revision=4))
    assert gone is not None
    assert gone.event == "gone"


def test_a_warning_in_the_snapshot_is_not_repeated_by_the_feed() -> None:
    s = sender()
    current = doc(deadline_in=10)
    assert [m.event for m in s.snapshot(current, "p1", "1-0")] == ["sandbox", "pauseImminent"]
    warning = warning_for(current, T0, WARN)
    payload = msgspec.json.encode(warning)
    assert s.change(change("2-0", changes.ChangeKind.WARNING, payload)) is None
    moved = msgspec.json.encode(warning_for(doc(deadline_in=25), T0, WARN))
    again = s.change(change("3-0", changes.ChangeKind.WARNING, moved))
    assert again is not None
    assert again.event == "pauseImminent"


def test_a_lifetime_warning_reaches_a_client_once_under_its_own_event() -> None:
    s = sender()
    ending = msgspec.structs.replace(
        doc(deadline_in=100), max_lifetime_at=T0 + timedelta(seconds=120)
    )
    assert [m.event for m in s.snapshot(ending, "p1", "1-0")] == ["sandbox", "lifetimeEnding"]
    warning = LIFETIME_WATCH.warning(ending, T0)
    payload = msgspec.json.encode(warning)
    assert s.change(change("2-0", changes.ChangeKind.LIFETIME, payload)) is None
    fresh = sender()
    fresh.snapshot(doc(deadline_in=100), "p1", "1-0")
    message = fresh.change(change("2-0", changes.ChangeKind.LIFETIME, payload))
    assert message is not None
    assert message.event == "lifetimeEnding"


def test_feed_entries_parse_and_unknown_ones_are_skipped() -> None:
    fields = {b"k": b"doc", b"p": b"", b"s": b"sbx-1", b"r": b"7", b"d": b"{}"}
    parsed = changes.from_entry(b"12-3", fields, 5)
    assert parsed == changes.Change("12-3", 5, changes.ChangeKind.DOC, None, "sbx-1", 7, b"{}")
    assert changes.from_entry(b"1-0", {**fields, b"k": b"future-kind"}) is None
    assert changes.from_entry(b"1-0", {b"k": b"doc"}) is None
    assert changes.entry_position("12-3") < changes.entry_position("12-10")
    assert changes.entry_position("9-9") < changes.entry_position("10-0")
    with pytest.raises(ValueError, match="invalid literal"):
        changes.entry_position("garbage")


def test_cursors_round_trip_and_foreign_ones_are_refused() -> None:
    assert decode_cursor(encode_cursor("2026-11-27T10:00:00+00:00", "evt-1"), 2) == [
        "2026-11-27T10:00:00+00:00",
        "evt-1",
    ]
    for bad in ("!!", encode_cursor("only-one"), "bm90IG91cnM"):
        with pytest.raises(ValidationException):
            decode_cursor(bad, 2)


def test_nul_in_a_cursor_or_filter_is_a_400_not_a_store_error() -> None:
    """Found by the hostile-input suite: PostgreSQL refused the NUL and the client got a 503."""
    with pytest.raises(ValidationException):
        decode_cursor(encode_cursor("a\x00b"), 1)
    with pytest.raises(ValidationException):
        decode_cursor("AA", 1)  # base64 of a lone NUL byte
    with pytest.raises(ValidationException, match="projectId"):
        storable("p\x00", "projectId")
    assert storable("p-1", "projectId") == "p-1"


class Inner:
    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.calls += 1


async def lane_request(
    lane: FastLane, path: str, headers: list[tuple[bytes, bytes]]
) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    scope = {"type": "http", "method": "GET", "path": path, "headers": headers}
    await lane(scope, receive, send)
    return sent


async def test_the_fast_lane_serves_only_the_happy_path_and_hands_on_the_rest() -> None:
    redis = FakeRedis({"sbx-1": doc(deadline_in=100)})

    class Reader:
        async def by_project(self, project_id: str) -> StatusDoc | None:
            if project_id == "p-rebuilding":
                raise RuntimeError("the read model is being rebuilt")
            return redis.docs["sbx-1"] if project_id == "p1" else None

        by_sandbox = redis.by_sandbox

    secret = "s" * 40
    deps: Any = type(
        "D",
        (),
        {
            "gate": Gate(TokenVerifier(secret), RateLimiter(0, Clock()), RateLimiter(0, Clock())),
            "reader": Reader(),
            "clock": staticmethod(lambda: T0),
            "warn": WarnPolicy(WINDOWS),
        },
    )()
    inner = Inner()
    lane = FastLane(inner, deps)
    good = mint(
        secret,
        Claims(projects=["p1", "p-rebuilding"], admin=False, ttl_seconds=600, now=int(time.time())),
    )
    auth = [(b"authorization", f"Bearer {good}".encode())]
    # A token the process has not verified yet is Litestar's: the lane computes no HMAC.
    assert await lane_request(lane, "/api/projects/p1/sandbox", auth) == []
    deps.gate.check(f"Bearer {good}", "127.0.0.1")  # as Litestar's route does
    inner.calls = 0
    start, body = await lane_request(lane, "/api/projects/p1/sandbox", auth)
    assert start["status"] == 200
    assert msgspec.json.decode(body["body"])["sandboxId"] == "sbx-1"
    etag = dict(start["headers"])[b"etag"]
    (not_modified, _) = await lane_request(
        lane, "/api/sandboxes/sbx-1", [*auth, (b"if-none-match", etag)]
    )
    assert not_modified["status"] == 304
    declined = [
        ("/api/projects/p2/sandbox", auth),  # another project: Litestar says 403
        ("/api/projects/p-rebuilding/sandbox", auth),  # a read that fails: Litestar says 503
        ("/api/projects/p1/sandbox", []),  # no token: 401
        ("/api/projects/p1/sandbox", [(b"authorization", b"Bearer nope")]),
        ("/api/projects/p1/sandbox", [*auth, (b"origin", b"https://app.example")]),  # CORS
        ("/api/sandboxes/unknown", auth),  # 404
        ("/api/sandboxes/stream", auth),
        ("/api/sandboxes/sbx-1/history", auth),
        ("/api/projects/p1/sandbox/stream", auth),
        ("/healthz", []),
    ]
    for path, headers in declined:
        assert await lane_request(lane, path, headers) == [], path
    assert inner.calls == len(declined)

    async def redis_down(project_id: str) -> StatusDoc | None:
        raise RedisConnectionError("Connection closed by server.")

    deps.reader.by_project = redis_down  # a store error: Litestar's route answers it (503)
    assert await lane_request(lane, "/api/projects/p1/sandbox", auth) == []
    assert inner.calls == len(declined) + 1


def test_a_reset_reaches_every_stream_and_spans_resumes() -> None:
    from status_api.change_hub import ChangeHub, _concerns

    hub = ChangeHub(PagedFeed(0))  # type: ignore[arg-type]  # dispatch reads nothing
    reset = changes.Change("9-0", 0, changes.ChangeKind.RESET, None, "", 0, b"")
    other = change("8-0", changes.ChangeKind.DOC, b"{}")
    with hub.subscribe("p1") as mine, hub.subscribe("p2") as theirs, hub.subscribe(None) as fleet:
        hub._dispatch(other)
        hub._dispatch(reset)
        assert [c.id for c in _drain(mine.queue)] == ["8-0", "9-0"]
        assert [c.id for c in _drain(theirs.queue)] == ["9-0"]
        assert [c.id for c in _drain(fleet.queue)] == ["8-0", "9-0"]
    assert _concerns(reset, "p2")
    assert not _concerns(other, "p2")
    assert sender().change(reset) is None  # the stream itself re-reads the state


def _drain(queue: Any) -> list[changes.Change]:
    out = []
    while not queue.empty():
        out.append(queue.get_nowait())
    return out


class PagedFeed:
    """The feed's read side in memory, per shard; records each XRANGE's count."""

    def __init__(self, entries: int, first: int = 1, shards: int = 1, trimmed: bool = False):
        self.layout = Layout(shards)
        self.streams = [
            [
                (f"{n}-{shard}".encode(), {**_DOC_FIELDS, b"s": f"s{shard}".encode()})
                for n in range(first, first + entries)
            ]
            for shard in range(shards)
        ]
        self.trimmed = trimmed
        self.counts: list[int] = []

    async def kept_from(self, shard: int) -> changes.Position | None:
        stream = self.streams[shard]
        if not self.trimmed or not stream:
            return None
        return changes.entry_position(stream[0][0].decode())

    async def after(
        self, shard: int, entry_id: str, count: int
    ) -> list[tuple[bytes, dict[bytes, bytes]]]:
        self.counts.append(count)
        position = changes.entry_position(entry_id)
        stream = self.streams[shard]
        return [e for e in stream if changes.entry_position(e[0].decode()) > position][:count]


_DOC_FIELDS = {b"k": b"doc", b"p": b"p1", b"r": b"1", b"d": b"{}"}


async def test_a_resume_reads_the_feed_in_bounded_pages_up_to_the_head() -> None:
    from status_api.change_hub import ChangeHub

    feed = PagedFeed(50)
    hub = ChangeHub(feed, resume_limit=20)  # type: ignore[arg-type]  # the read side only
    missed = await hub.since(at("10-0"), "p1", head=at("30-0"))
    assert missed is not None
    assert [c.id for c in missed] == [f"{n}-0" for n in range(11, 31)]  # later ones come live
    assert all(count <= 20 for count in feed.counts)
    # One more change than the limit between the client and the head: a snapshot instead.
    assert await hub.since(at("9-0"), "p1", head=at("30-0")) is None
    assert await hub.since(at("10-0"), "p2", head=at("30-0")) == []  # another project's only
    # Out of the feed's reach (trimmed past it), or not one of ours: a snapshot too.
    trimmed = ChangeHub(PagedFeed(5, first=20, trimmed=True))  # type: ignore[arg-type]
    assert await trimmed.since(at("10-0"), "p1", at("24-0")) is None
    assert hub.cursor("garbage") is None
    assert hub.cursor("10-0") is None  # an id of the feed before it was sharded


async def test_a_resume_gathers_every_shard_from_its_own_position_oldest_first() -> None:
    from status_api.change_hub import ChangeHub

    feed = PagedFeed(10, shards=2)
    hub = ChangeHub(feed, resume_limit=20)  # type: ignore[arg-type]
    resume = hub.cursor(at("3-0", "7-1").encode())
    assert resume == at("3-0", "7-1")
    missed = await hub.since(resume, "p1", head=at("5-0", "9-1"))
    assert missed is not None
    assert [(c.shard, c.id) for c in missed] == [(0, "4-0"), (0, "5-0"), (1, "8-1"), (1, "9-1")]
    # A shard the client never had an entry of (empty when it connected) is read from its start,
    # as long as nothing of it was trimmed.
    fresh = await hub.since(at("0-0", "9-1"), "p1", head=at("2-0", "9-1"))
    assert fresh is not None
    assert [c.id for c in fresh] == ["1-0", "2-0"]
    assert await hub.since(at("3-0", "7-1"), "p1", head=at("5-0", "10-1")) is not None
    # The limit counts every shard's entries together.
    assert (
        await ChangeHub(feed, resume_limit=3).since(  # type: ignore[arg-type]
            resume, "p1", head=at("5-0", "9-1")
        )
        is None
    )


def test_each_event_id_is_the_cursor_over_every_shard() -> None:
    s = sender(shards=3)
    s.start_at(at("5-0", "9-0", "0-0"))
    first = s.change(change("6-0", changes.ChangeKind.DOC, encode_doc(doc(revision=2)), 2))
    assert first is not None
    assert changes.Cursor.decode(str(first.id), 3) == at("6-0", "9-0", "0-0")
    # Shards are compared each with its own position: 7-0 in shard 1 is older than 9-0 there.
    late = s.change(change("7-0", changes.ChangeKind.DOC, encode_doc(doc(revision=3)), 3, shard=1))
    assert late is None
    other = doc(revision=1)
    third = s.change(
        change("1-5", changes.ChangeKind.DOC, encode_doc(other), 1, sandbox="sbx-9", shard=2)
    )
    assert third is not None
    assert changes.Cursor.decode(str(third.id), 3) == at("6-0", "9-0", "1-5")
    with pytest.raises(ValueError, match="cursor"):
        changes.Cursor.decode(str(third.id), 2)


def test_a_project_stream_drops_the_late_kill_of_the_sandbox_it_replaced() -> None:
    """Shards are merged in no global order: the kill of a project's old sandbox (one shard) may
    arrive after its new sandbox (another): the client keeps the new one."""
    s = sender(shards=2)
    new = msgspec.structs.replace(doc(revision=1), sandbox_id="sbx-new")
    shown = s.change(change("5-0", changes.ChangeKind.DOC, encode_doc(new), 1, "sbx-new", 1))
    assert shown is not None
    assert shown.event == "sandbox"
    killed = doc(Status.KILLED, revision=4)
    assert s.change(change("4-0", changes.ChangeKind.DOC, encode_doc(killed), 4)) is None
    # The fleet stream shows every sandbox's end.
    fleet = sender(shards=2, project_id=None)
    fleet.change(change("5-0", changes.ChangeKind.DOC, encode_doc(new), 1, "sbx-new", 1))
    gone = fleet.change(change("4-0", changes.ChangeKind.DOC, encode_doc(killed), 4))
    assert gone is not None
    assert gone.event == "gone"


def test_cursor_encoding_round_trips_and_stays_short() -> None:
    cursor = changes.Cursor(tuple((1_796_203_326_386 - i * 1_000, i % 3) for i in range(16)))
    encoded = cursor.encode()
    assert changes.Cursor.decode(encoded, 16) == cursor
    assert len(encoded) < 120
    assert changes.Cursor.decode(changes.Cursor.start(4).encode(), 4) == changes.Cursor.start(4)


async def test_a_resume_notices_the_feed_trimmed_while_it_reads() -> None:
    from status_api.change_hub import ChangeHub

    feed = PagedFeed(3000)
    hub = ChangeHub(feed)  # type: ignore[arg-type]
    original = feed.after

    async def trimming(
        shard: int, entry_id: str, count: int
    ) -> list[tuple[bytes, dict[bytes, bytes]]]:
        page = await original(shard, entry_id, count)
        del feed.streams[shard][:1500]  # the projector's writes trimmed the old end meanwhile
        feed.trimmed = True
        return page

    feed.after = trimming  # type: ignore[method-assign]
    assert await hub.since(at("1-0"), "p1", head=at("3000-0")) is None


def test_stream_slots_cap_each_token_and_the_process_and_come_back_once() -> None:
    from status_api.stream_slots import StreamsFullError, StreamSlots

    slots = StreamSlots(total=3, per_token=2)
    first, _second = slots.take("a"), slots.take("a")
    with pytest.raises(StreamsFullError) as per_token:
        slots.take("a")
    assert (per_token.value.per_token, per_token.value.retry_after) == (True, 30)
    slots.take("b")
    with pytest.raises(StreamsFullError) as full:
        slots.take("c")
    assert (full.value.per_token, full.value.retry_after) == (False, 5)
    first()
    first()  # given back once, however often called
    assert slots.open == 2
    slots.take("a")
    with pytest.raises(StreamsFullError):
        slots.take("c")
