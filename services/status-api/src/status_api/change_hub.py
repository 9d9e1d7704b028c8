"""Follows the change feed (one Redis stream read loop per shard, per process) and hands each
change to this process's SSE clients: a thousand open streams cost one blocking XREAD per shard,
not a thousand polls.

A client that cannot keep up is cut off rather than buffered without bound; its EventSource
reconnects with Last-Event-ID and catches up from the feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Iterator
from itertools import chain

from redis.exceptions import RedisError

from sandbox_common.readmodel import feed as changes
from sandbox_common.readmodel.feed import Change, ChangeFeed, ChangeKind, Cursor
from sandbox_common.readmodel.redis_text import text as _text
from sandbox_common.tasks import cancel_and_wait
from status_api import metrics

log = logging.getLogger(__name__)


class Subscription:
    def __init__(self, project_id: str | None, size: int) -> None:
        self.project_id = project_id  # None: every change (the admin fleet stream)
        self.queue: asyncio.Queue[Change] = asyncio.Queue(size)
        self.overflowed = False


class ChangeHub:
    def __init__(
        self,
        feed: ChangeFeed,
        *,
        block_ms: int = 1000,
        queue_size: int = 256,
        resume_limit: int = 10_000,
    ) -> None:
        self._feed = feed
        self._shards = feed.layout.shards
        # A resume reads at most this many entries, a page at a time; a client further behind
        # is sent a snapshot (the current state) instead.
        self._resume_limit = resume_limit
        self._resume_page = min(1000, resume_limit)
        # Well under the clients' 5 s socket timeout (redis-py's default for pools built with
        # a retry): a block as long as the timeout raced it and lost reads every few seconds.
        self._block_ms = block_ms
        self._queue_size = queue_size
        self._by_project: dict[str, set[Subscription]] = {}
        self._everything: set[Subscription] = set()
        self._tasks: list[asyncio.Task[None]] = []
        # The newest entry of each shard's stream this process has handed out: a snapshot read
        # after subscribing reflects at least every change up to here (the projector writes
        # document and entry in one step).
        self.head = Cursor.start(self._shards)

    def cursor(self, event_id: str) -> Cursor | None:
        """The position an SSE event id names, or None when it is not one of ours."""
        try:
            return Cursor.decode(event_id, self._shards)
        except ValueError:
            return None

    async def start(self) -> None:
        for shard in range(self._shards):
            try:
                newest = await self._feed.newest_id(shard)
                if newest is not None:
                    self.head = self.head.moved(shard, changes.entry_position(newest))
            except RedisError as exc:  # the loop below keeps trying; reads can still be served
                log.warning("change feed shard %d not readable yet: %s", shard, exc)
        # One follower per shard: a cluster serves one slot per command (one XREAD each).
        self._tasks = [
            asyncio.create_task(self._follow(shard), name=f"change-hub-{shard}")
            for shard in range(self._shards)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            await cancel_and_wait(task)

    @contextlib.contextmanager
    def subscribe(self, project_id: str | None) -> Iterator[Subscription]:
        # The fleet stream sees every change: the projector writes a batch of up to 2,000
        # documents at once, so its queue holds several batches (a project's sees a few).
        size = self._queue_size if project_id is not None else self._queue_size * 32
        sub = Subscription(project_id, size)
        group = (
            self._everything
            if project_id is None
            else self._by_project.setdefault(project_id, set())
        )
        group.add(sub)
        try:
            yield sub
        finally:
            group.discard(sub)
            if project_id is not None and not group:
                self._by_project.pop(project_id, None)

    async def since(
        self, resume: Cursor, project_id: str | None, head: Cursor
    ) -> list[Change] | None:
        """The changes after `resume` up to `head` in every shard (for a reconnecting client;
        later ones reach it live), oldest first, or None when they cannot all be served: a
        shard's stream no longer reaches back that far, or there are more than the resume
        limit. The client is sent a snapshot then, never part of what it missed."""
        found: list[Change] = []
        read = 0
        for shard in range(self._shards):
            missed = await self._missed(shard, resume.at(shard), head.at(shard))
            if missed is None:
                return None
            read += len(missed)
            if read > self._resume_limit:
                return None
            found.extend(c for c in missed if _concerns(c, project_id))
        # Across shards, by the time each entry was written (one sandbox's are in one shard,
        # in their order, whatever this does).
        found.sort(key=lambda c: changes.entry_position(c.id))
        return found

    async def _missed(
        self, shard: int, position: changes.Position, end: changes.Position
    ) -> list[Change] | None:
        found: list[Change] = []
        while position < end:
            # Checked before every page: the stream is trimmed from its old end while we read,
            # and XRANGE would silently skip what was trimmed.
            kept_from = await self._feed.kept_from(shard)
            if kept_from is not None and kept_from > position:
                return None
            page = await self._feed.after(shard, changes.entry_id(position), self._resume_page)
            if not page:
                break
            position = changes.entry_position(_text(page[-1][0]))
            missed = [(i, f) for i, f in page if changes.entry_position(_text(i)) <= end]
            if len(found) + len(missed) > self._resume_limit:
                return None
            parsed = (changes.from_entry(i, f, shard) for i, f in missed)
            found.extend(c for c in parsed if c is not None)
        return found

    async def _follow(self, shard: int) -> None:
        last = changes.entry_id(self.head.at(shard))
        while True:
            try:
                entries = await self._feed.follow(shard, last, self._block_ms, 1000)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("change feed shard %d read failed, retrying in 1 s: %s", shard, exc)
                await asyncio.sleep(1)
                continue
            if not entries:
                continue
            last = _text(entries[-1][0])
            if not (self._everything or self._by_project):
                # Nobody listens here: keep the position, skip decoding (a replica without
                # streams open spent a visible share of its CPU on every projector batch).
                self.head = self.head.moved(shard, changes.entry_position(last))
                continue
            for entry_id, fields in entries:
                position = changes.entry_position(_text(entry_id))
                self.head = self.head.moved(shard, position)
                change = changes.from_entry(entry_id, fields, shard)
                if change is not None:
                    self._dispatch(change)

    def _dispatch(self, change: Change) -> None:
        if change.kind is ChangeKind.RESET:  # everyone's state was replaced
            listeners: Iterable[Subscription] = [
                sub for group in self._by_project.values() for sub in group
            ]
        else:
            listeners = self._by_project.get(change.project_id or "", ())
        for sub in chain(listeners, self._everything):
            if sub.overflowed:
                continue
            try:
                sub.queue.put_nowait(change)
            except asyncio.QueueFull:
                sub.overflowed = True
                metrics.SSE_DROPPED.inc()


def _concerns(change: Change, project_id: str | None) -> bool:
    return project_id is None or change.kind is ChangeKind.RESET or change.project_id == project_id
