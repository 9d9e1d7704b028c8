"""Use case: a policy change applies at once. The projector writes every status document with
the policies in force (`keeper.book`); when they change, the live sandboxes they govern are
judged again and those whose idle deadline moved get a new revision in PostgreSQL and their
document rewritten (idle index and change feed with it, so SSE clients see the new deadline).

Every replica keeps its own book: loaded at start, reloaded when PostgreSQL says the policies
changed (LISTEN/NOTIFY, sent by the transaction that changed them), after a batch of its own
carried policy facts, and every POLICY_RELOAD_SECONDS in case a notice was missed. Whichever
replica sees the book change re-indexes what changed (several replicas doing it at once is
safe: a row gets a new revision only while still at the one it was judged at).

A replica that folds a sandbox with the old book while the policy lands (its notice not yet
there) writes the old deadline; the re-index runs a second pass REINDEX_SECOND_PASS_SECONDS
later for those. Meanwhile the actuator re-judges every pause against the policies in Redis
(readmodel/policies.py), so a briefly stale deadline can make a pause late, never wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from projector import metrics
from projector.handlers import PolicyChange, Projected
from sandbox_common.policies import NO_POLICIES, Placed, PolicyBook
from sandbox_common.readmodel import DeadlineRule, StatusDoc, to_doc
from sandbox_common.tasks import cancel_and_wait

log = logging.getLogger(__name__)

PAGE = 1000
# Progress lines of a long re-index: one per this many sandboxes judged.
PROGRESS_EVERY = 20_000
ALL = "*"  # the scope of a re-index of every live sandbox


class Running(Protocol):
    async def page(self, project_id: str | None, after: str, limit: int) -> list[Projected]: ...

    async def bump(self, judged: Sequence[Projected]) -> list[Projected]: ...


class StoredDocs(Protocol):
    async def docs(self, sandbox_ids: Sequence[str]) -> dict[str, StatusDoc]: ...


class DocWriter(Protocol):
    async def write(self, docs: Sequence[StatusDoc]) -> None: ...


class PolicyWriter(Protocol):
    async def write(self, placed: Sequence[Placed]) -> None: ...


@dataclass(frozen=True)
class Reindexed:
    checked: int = 0
    moved: int = 0


def stale(
    p: Projected, stored: StatusDoc | None, rule: DeadlineRule, book: PolicyBook, now: datetime
) -> bool:
    """Whether the stored document of a live sandbox shows other deadlines than the
    book gives. Only a document at the row's own revision is judged: one behind is being
    written by the live projector, one ahead was written after this row was read (the next
    pass judges both again)."""
    if stored is None or stored.revision != p.revision:
        return False
    expected = to_doc(p.state, p.revision, now, rule, book)
    if expected is None:
        return False
    return (expected.idle_deadline_at, expected.pause_reason, expected.delete_at) != (
        stored.idle_deadline_at,
        stored.pause_reason,
        stored.delete_at,
    )


@dataclass
class Reindex:
    running: Running
    stored: StoredDocs
    writer: DocWriter
    rule: DeadlineRule
    book: Callable[[], PolicyBook]

    async def run(self, scope: str) -> Reindexed:
        """Every live (RUNNING or PAUSED) sandbox of the scope (a project id, or ALL), a page
        at a time."""
        project = None if scope == ALL else scope
        label = "all" if scope == ALL else "project"
        after, checked, moved = "", 0, 0
        while page := await self.running.page(project, after, PAGE):
            after = page[-1].state.sandbox_id
            book, now = self.book(), datetime.now(UTC)
            found = await self.stored.docs([p.state.sandbox_id for p in page])
            judged = [
                p for p in page if stale(p, found.get(p.state.sandbox_id), self.rule, book, now)
            ]
            bumped = await self.running.bump(judged)
            docs = (to_doc(p.state, p.revision, now, self.rule, book) for p in bumped)
            await self.writer.write([d for d in docs if d is not None])
            checked, moved = checked + len(page), moved + len(bumped)
            metrics.POLICY_REINDEX_CHECKED.labels(scope=label).inc(len(page))
            metrics.POLICY_REINDEX_MOVED.labels(scope=label).inc(len(bumped))
            if scope == ALL and checked % PROGRESS_EVERY < PAGE:
                log.info(
                    "re-indexing every live sandbox: %d judged, %d deadlines moved so far",
                    checked,
                    moved,
                    extra={"checked": checked, "moved": moved},
                )
        return Reindexed(checked, moved)


class PolicySource(Protocol):
    async def load(self) -> list[Placed]: ...


class Judges(Protocol):
    """Judges every live sandbox of a scope again (Reindex)."""

    async def run(self, scope: str) -> Reindexed: ...


@dataclass(eq=False)
class PolicyKeeper:
    """The book every document is written with, and the re-indexes its changes start."""

    source: PolicySource
    redis: PolicyWriter
    reindex: Judges | None = None
    second_pass_seconds: float = 5.0
    book: PolicyBook = field(default=NO_POLICIES, init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)
    _passes: dict[str, asyncio.Task[None]] = field(default_factory=dict, init=False)
    _again: set[str] = field(default_factory=set, init=False)
    _wake: dict[str, asyncio.Event] = field(default_factory=dict, init=False)

    def current(self) -> PolicyBook:
        return self.book

    async def load(self) -> None:
        """The first load, before any batch is folded; then every live sandbox judged once
        (IDLE_TIMEOUT_SECONDS or a policy may have changed while no projector ran)."""
        async with self._lock:
            placed = await self.source.load()
            self.book = PolicyBook.of((p.project_id, p.policy) for p in placed)
            # Redis may lack them (lost, or written by a version that kept none there).
            await self.redis.write(placed)
        metrics.POLICY_RELOADS.labels(trigger="start").inc()
        self._request(ALL)

    async def refresh(self, trigger: str) -> None:
        async with self._lock:
            placed = await self.source.load()
            before, self.book = self.book, PolicyBook.of((p.project_id, p.policy) for p in placed)
            default_changed, projects = self.book.changed_scopes(before)
        metrics.POLICY_RELOADS.labels(trigger=trigger).inc()
        if default_changed:  # every sandbox is judged again: the projects' with the rest
            log.info("the default policy changed: re-indexing every live sandbox")
            self._request(ALL)
            return
        for project in sorted(projects):
            self._request(project)

    async def applied(self, changes: Sequence[PolicyChange]) -> None:
        """A batch of this replica's stored policy facts: into Redis (for the actuator), then
        into the book."""
        await self.redis.write(
            [Placed(c.project_id, c.fact.partition, c.fact.offset, c.policy) for c in changes]
        )
        await self.refresh("folded")

    def _request(self, scope: str) -> None:
        if self.reindex is None:
            return
        running = self._passes.get(scope)
        if running is not None and not running.done():
            self._again.add(scope)
            self._wake[scope].set()  # a run waiting for its second pass starts it now
            return
        self._wake[scope] = asyncio.Event()
        self._passes[scope] = asyncio.create_task(self._run(scope), name=f"reindex:{scope}")

    async def _run(self, scope: str) -> None:
        """Two passes, the second REINDEX_SECOND_PASS_SECONDS after the first (a write that
        raced the first); a change meanwhile starts a pass at once, and two more follow."""
        wake, left = self._wake[scope], 2
        metrics.POLICY_REINDEX_RUNNING.inc()
        try:
            while left:
                self._again.discard(scope)
                wake.clear()
                await self._pass(scope)
                left = 2 if scope in self._again else left - 1
                if left and scope not in self._again:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.second_pass_seconds):
                            await wake.wait()
                    if wake.is_set():
                        left = 2
        finally:
            metrics.POLICY_REINDEX_RUNNING.dec()

    async def _pass(self, scope: str) -> None:
        assert self.reindex is not None
        try:
            done = await self.reindex.run(scope)
        except Exception:  # logged; the next change, reload or start judges them again
            log.exception("re-indexing %s after a policy change failed", scope)
            return
        if done.moved or scope == ALL:
            log.info(
                "re-indexed %s: %d live sandboxes judged, %d deadlines moved",
                "every sandbox" if scope == ALL else f"project {scope}",
                done.checked,
                done.moved,
                extra={"scope": scope, "checked": done.checked, "moved": done.moved},
            )

    async def settle(self) -> None:
        """Returns once no re-index runs or waits for its second pass."""
        while pending := [t for t in self._passes.values() if not t.done()]:
            await asyncio.gather(*pending, return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._passes.values()):
            await cancel_and_wait(task)
