"""Follows the change feed (one Redis stream read loop per process) and hands each change to
this process's SSE clients: a thousand open streams cost one blocking XREAD, not a thousand
polls.

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
from sandbox_common.readmodel.feed import Change, ChangeFeed, ChangeKind
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
        self._task: asyncio.Task[None] | None = None
        # The newest feed entry this process has handed out: a snapshot read after subscribing
        # reflects at least every change up to here (the projector writes document and entry
        # in one step).
        self.last_id = "0-0"

    async def start(self) -> None:
        try:
            newest = await self._feed.newest_id()
            if newest is not None:
                self.last_id = newest
        except RedisError as exc:  # the loop below keeps trying; reads can still be served
            log.warning("change feed not readable yet: %s", exc)
        self._task = asyncio.create_task(self._follow(), name="change-hub")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

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
        self, last_event_id: str, project_id: str | None, head: str
    ) -> list[Change] | None:
        """The changes after `last_event_id` up to `head` (for a reconnecting client; later
        ones reach it live), or None when they cannot all be served: the id is not one of
        ours, the feed no longer reaches back that far, or there are more than the resume
        limit. The client is sent a snapshot then, never part of what it missed."""
        try:
            position = changes.entry_position(last_event_id)
            end = changes.entry_position(head)
        except ValueError:
            return None
        found: list[Change] = []
        cursor, read = last_event_id, 0
        while changes.entry_position(cursor) < end:
            # Checked before every page: the feed is trimmed from its old end while we read,
            # and XRANGE would silently skip what was trimmed.
            oldest = await self._feed.oldest_id()
            if oldest is None or changes.entry_position(oldest) > position:
                return None
            page = await self._feed.after(cursor, self._resume_page)
            if not page:
                break
            cursor = _text(page[-1][0])
            position = changes.entry_position(cursor)
            missed = [(i, f) for i, f in page if changes.entry_position(_text(i)) <= end]
            read += len(missed)
            if read > self._resume_limit:
                return None
            parsed = (changes.from_entry(i, f) for i, f in missed)
            found.extend(c for c in parsed if c is not None and _concerns(c, project_id))
        return found

    async def _follow(self) -> None:
        while True:
            try:
                entries = await self._feed.follow(self.last_id, self._block_ms, 1000)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                log.warning("change feed read failed, retrying in 1 s: %s", exc)
                await asyncio.sleep(1)
                continue
            if entries and not (self._everything or self._by_project):
                # Nobody listens here: keep the position, skip decoding (a replica without
                # streams open spent a visible share of its CPU on every projector batch).
                self.last_id = _text(entries[-1][0])
                continue
            for entry_id, fields in entries:
                self.last_id = _text(entry_id)
                change = changes.from_entry(entry_id, fields)
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
