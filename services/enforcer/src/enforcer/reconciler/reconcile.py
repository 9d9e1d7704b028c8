"""Use case: one reconciliation pass. Reads what we know, then E2B's list (in that order: a
sandbox we know of existed before the listing began, so not being listed means gone), confirms
each missing one with a GET of the API (never the sandbox's own URL: that would wake it), and
publishes the corrective facts."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from enforcer.reconciler.rules import (
    Known,
    Plan,
    Upstream,
    lifecycle_fact,
    lifecycle_unknown,
    missing_upstream,
    plan,
)
from sandbox_common.facts import FactSink

log = logging.getLogger("reconciler")
_CONFIRMS_IN_FLIGHT = 8


class InventoryError(RuntimeError):
    """E2B did not answer a list or get usefully (an error status, no answer)."""


class Inventory(Protocol):
    async def list_all(self) -> dict[str, Upstream]: ...

    async def exists(self, sandbox_id: str) -> bool: ...

    async def details(self, sandbox_id: str) -> Upstream | None: ...


class KnownSandboxes(Protocol):
    async def alive(self) -> dict[str, Known]: ...

    async def lookup(self, sandbox_ids: Collection[str]) -> dict[str, Known]: ...


@dataclass(frozen=True)
class Ports:
    known: KnownSandboxes
    inventory: Inventory
    sink: FactSink


@dataclass(frozen=True)
class PassOptions:
    # The metadata key that holds a sandbox's project (PROJECT_METADATA_KEY).
    project_key: str = "projectId"
    # Compare and log, publish nothing (ENFORCER_DRY_RUN).
    dry_run: bool = False
    # At most this many GETs per pass to read E2B's own lifecycle of sandboxes we have not read
    # it for yet (RECONCILER_LIFECYCLE_READS), so a large fleet is read over a few passes.
    lifecycle_reads: int = 100


async def reconcile(now: datetime, ports: Ports, options: PassOptions) -> Plan:
    started = time.perf_counter()
    project_key, dry_run = options.project_key, options.dry_run
    known_store, inventory, sink = ports.known, ports.inventory, ports.sink
    known = await known_store.alive()
    upstream = await inventory.list_all()
    known.update(await known_store.lookup([sid for sid in upstream if sid not in known]))
    gate = asyncio.Semaphore(_CONFIRMS_IN_FLIGHT)

    async def gone(sid: str) -> bool:
        async with gate:
            try:
                return not await inventory.exists(sid)
            except InventoryError as exc:
                # One sandbox E2B would not answer for (an id its API cannot route, a 5xx) is
                # left as it is, not killed, and does not stop the pass for the others.
                log.warning("[Reconciler] could not confirm %r: %s", sid, exc)
                return False

    candidates = missing_upstream(known, upstream)
    confirmed = await asyncio.gather(*(gone(sid) for sid in candidates))
    result = plan(
        known,
        upstream,
        {sid for sid, g in zip(candidates, confirmed, strict=True) if g},
        observed_at=now,
        project_key=project_key,
    )
    to_read = lifecycle_unknown(known, upstream, options.lifecycle_reads)
    read = await asyncio.gather(*(_details(inventory, sid, gate) for sid in to_read))
    lifecycles = [f for d in read if d is not None and (f := lifecycle_fact(d, now))]
    result.lifecycle_read.extend(f.sandbox_id for f in lifecycles)
    result.facts.extend(lifecycles)
    if not dry_run:
        for fact in result.facts:
            await sink.publish(fact)
    log.info(
        "[Reconciler] %d listed upstream, %d known: %d unknown, %d state fixed, %d timeouts "
        "fixed, %d killed upstream, %d lifecycles read, %d facts%s, %dms",
        len(upstream),
        len(known),
        len(result.unknown),
        len(result.state_fixed),
        len(result.timeout_fixed),
        len(result.killed),
        len(result.lifecycle_read),
        len(result.facts),
        " (dry run: none published)" if dry_run else " published",
        round((time.perf_counter() - started) * 1000),
        extra={
            "listed": len(upstream),
            "unknown": len(result.unknown),
            "state_fixed": len(result.state_fixed),
            "timeout_fixed": len(result.timeout_fixed),
            "killed": len(result.killed),
            "lifecycle_read": len(result.lifecycle_read),
            "dry_run": dry_run,
        },
    )
    return result


async def _details(inventory: Inventory, sid: str, gate: asyncio.Semaphore) -> Upstream | None:
    async with gate:
        try:
            return await inventory.details(sid)
        except InventoryError as exc:
            log.warning("[Reconciler] could not read the lifecycle of %r: %s", sid, exc)
            return None
