"""Use case: Redis from PostgreSQL, the fast path after a Redis loss (no topic to read). The
states are read in one snapshot and written under shadow keys with their PostgreSQL revisions,
then swapped in; a document the live projector wrote meanwhile has a higher revision and is
kept. The live projector runs it when the read model's marker is gone; `sandboxctl
rebuild-redis` runs it by hand."""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Protocol

from projector import metrics
from projector.handlers import Projected
from sandbox_common.policies import Placed, PolicyBook
from sandbox_common.readmodel import DeadlineRule, to_doc
from sandbox_common.readmodel.marker import Stale, Written
from sandbox_common.readmodel.reader import ReadModelReader
from sandbox_common.readmodel.shadow import ShadowWriter, pointers

log = logging.getLogger(__name__)
# Every stale document goes: the ids are re-checked against PostgreSQL just before the swap.
_ANY_REVISION = 2**62


class Snapshot(Protocol):
    async def states(self) -> list[Projected]: ...

    async def policies(self) -> list[Placed]: ...

    async def existing(self, sandbox_ids: Collection[str]) -> set[str]: ...


async def rebuild_read_model(
    snapshot: Snapshot,
    shadow: ShadowWriter,
    reader: ReadModelReader,
    rule: DeadlineRule,
    *,
    by: str,
) -> tuple[int, int, int]:
    """Returns (documents swapped in, newer live ones kept, stale ones removed). The documents
    are written with the policies PostgreSQL holds, and those go into Redis too."""
    projected = await snapshot.states()
    placed = await snapshot.policies()
    book = PolicyBook.of((p.project_id, p.policy) for p in placed)
    await shadow.clear()
    now = datetime.now(UTC)
    docs = (to_doc(p.state, p.revision, now, rule, book) for p in projected)
    await shadow.write([doc for doc in docs if doc is not None], now)
    await shadow.write_pointers(pointers(p.state for p in projected))
    candidates = await reader.all_sandbox_ids() - {p.state.sandbox_id for p in projected}
    if candidates:
        # Created after the snapshot (the live projector wrote them): not stale.
        await shadow.mark_stale(candidates - await snapshot.existing(candidates))
    await shadow.replace_policies(placed)
    return await shadow.swap(_ANY_REVISION, Written(by, now, "postgresql"))


async def rebuild_if_missing(
    snapshots: Callable[[], AbstractAsyncContextManager[Snapshot | None]],
    shadow: ShadowWriter,
    reader: ReadModelReader,
    rule: DeadlineRule,
    *,
    by: str,
) -> bool:
    """Rebuilds when the read model's marker is gone (Redis lost it), names another Redis (a
    promoted replica may lack its primary's last writes) or another key layout; one rebuilder
    at a time: `snapshots` gives None while a replay or another replica holds the rebuild
    lock. Returns whether this call rebuilt it."""
    stale = await reader.staleness()
    if stale is None:
        return False
    async with snapshots() as snapshot:
        if snapshot is None:
            return False
        log.warning("read model %s: rebuilding it from PostgreSQL", stale.value)
        metrics.READ_MODEL_REBUILDS.labels(reason=stale.name.lower()).inc()
        if stale is Stale.LAYOUT:
            # The keys of the old layout are never read again (nor written: this version
            # writes only its own), so they go whenever; now, before they are forgotten.
            await shadow.drop_foreign()
        swapped, kept, removed = await rebuild_read_model(snapshot, shadow, reader, rule, by=by)
    log.warning(
        "read model rebuilt from PostgreSQL: %d documents (%d newer kept, %d stale removed)",
        swapped,
        kept,
        removed,
        extra={"swapped": swapped, "kept": kept, "removed": removed},
    )
    return True


async def observe_memory(reader: ReadModelReader, warned: bool) -> bool:
    """Redis's memory against its limit into the metrics (the alerts' input); warns once
    (returns whether it has) when Redis could evict the read model: no limit, or a policy other
    than noeviction."""
    try:
        memory = await reader.memory()
    except Exception:  # readiness reports an unreachable Redis
        log.debug("reading Redis's memory figures failed", exc_info=True)
        return warned
    metrics.observe_redis_memory(memory)
    if not memory.bounded and not warned:
        log.warning(
            "Redis runs with maxmemory=%d and policy %s: set a maxmemory with"
            " maxmemory-policy noeviction, or it may evict the read model",
            memory.max_bytes,
            memory.policy,
        )
        return True
    return warned
