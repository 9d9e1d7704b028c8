"""The reconciler's I/O: E2B's list and get (the one E2B client), our states (PostgreSQL)."""

from __future__ import annotations

from collections.abc import Collection

import asyncpg

from enforcer.reconciler.reconcile import InventoryError
from enforcer.reconciler.rules import Known, Upstream
from sandbox_common.e2b_api.client import E2BApi, E2BApiError
from sandbox_common.readmodel import Status


class E2BInventory:
    """A failed list abandons the pass (a partial list would look like kills)."""

    def __init__(self, api: E2BApi) -> None:
        self._api = api

    async def list_all(self) -> dict[str, Upstream]:
        try:
            listed = await self._api.list_sandboxes()
        except E2BApiError as exc:
            raise InventoryError(str(exc)) from exc
        return {up.sandbox_id: up for up in listed}

    async def exists(self, sandbox_id: str) -> bool:
        try:
            return await self._api.sandbox_exists(sandbox_id)
        except E2BApiError as exc:
            raise InventoryError(str(exc)) from exc

    async def details(self, sandbox_id: str) -> Upstream | None:
        try:
            return await self._api.sandbox(sandbox_id)
        except E2BApiError as exc:
            raise InventoryError(str(exc)) from exc


class PostgresKnown:
    def __init__(self, pool: asyncpg.Pool[asyncpg.Record]) -> None:
        self._pool = pool

    async def alive(self) -> dict[str, Known]:
        rows = await self._pool.fetch(
            f"SELECT {_KNOWN_COLUMNS} FROM sandboxes"  # noqa: S608
            " WHERE status IS NOT NULL AND status <> 'KILLED'"
        )
        return {r["sandbox_id"]: _known(r) for r in rows}

    async def lookup(self, sandbox_ids: Collection[str]) -> dict[str, Known]:
        if not sandbox_ids:
            return {}
        rows = await self._pool.fetch(
            f"SELECT {_KNOWN_COLUMNS} FROM sandboxes WHERE sandbox_id = ANY($1::text[])",  # noqa: S608
            list(sandbox_ids),
        )
        return {r["sandbox_id"]: _known(r) for r in rows}


_KNOWN_COLUMNS = "sandbox_id, status, timeout_at, lifecycle IS NOT NULL AS lifecycle_known"


def _known(row: asyncpg.Record) -> Known:
    status = row["status"]
    return Known(
        row["sandbox_id"],
        Status(status) if status else None,
        row["timeout_at"],
        row["lifecycle_known"],
    )
