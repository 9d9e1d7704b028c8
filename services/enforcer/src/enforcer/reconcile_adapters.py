"""The reconciler's I/O: E2B's list and get (httpx), our states (PostgreSQL)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx

from enforcer.rate_limit import TokenBucket
from enforcer.reconcile import Known, Upstream
from enforcer.reconciler import InventoryError
from sandbox_common.readmodel import Status

PAGE_SIZE = 100  # E2B's maximum


class E2BInventoryError(InventoryError):
    """E2B's list or get failed: the pass is abandoned (a partial list would look like kills)."""


class E2BInventory:
    def __init__(self, http: httpx.AsyncClient, pace: TokenBucket | None = None) -> None:
        self._http = http
        # Every call is paced: a pass over a fleet we know much more of than E2B lists (a
        # confirming GET each) must stay far under E2B's per-team rate limit.
        self._pace = pace

    async def list_all(self) -> dict[str, Upstream]:
        """Every page of `GET /v2/sandboxes` (the next page's token is in X-Next-Token)."""
        params: dict[str, str | int] = {"state": "running,paused", "limit": PAGE_SIZE}
        found: dict[str, Upstream] = {}
        while True:
            response = await self._get("/v2/sandboxes", params)
            if response.status_code != 200:
                raise E2BInventoryError(f"list answered {response.status_code}: {response.text}")
            items: list[dict[str, Any]] = response.json()
            for item in items:
                up = Upstream.from_api(item)
                found[up.sandbox_id] = up
            token = response.headers.get("X-Next-Token")
            if not token or not items:
                return found
            params["nextToken"] = token

    async def exists(self, sandbox_id: str) -> bool:
        response = await self._get(f"/sandboxes/{quote(sandbox_id, safe='')}", None)
        if response.status_code == 404:
            return False
        if response.status_code == 200:
            return True
        raise E2BInventoryError(f"get {sandbox_id} answered {response.status_code}")

    async def _get(self, path: str, params: dict[str, str | int] | None) -> httpx.Response:
        if self._pace is not None:
            await self._pace.acquire()
        try:
            return await self._http.get(path, params=params)
        except httpx.HTTPError as exc:
            raise E2BInventoryError(f"GET {path}: {exc!r}") from exc


class PostgresKnown:
    def __init__(self, pool: asyncpg.Pool[asyncpg.Record]) -> None:
        self._pool = pool

    async def alive(self) -> dict[str, Known]:
        rows = await self._pool.fetch(
            "SELECT sandbox_id, status, timeout_at FROM sandboxes"
            " WHERE status IS NOT NULL AND status <> 'KILLED'"
        )
        return {r["sandbox_id"]: _known(r) for r in rows}

    async def lookup(self, sandbox_ids: Collection[str]) -> dict[str, Known]:
        if not sandbox_ids:
            return {}
        rows = await self._pool.fetch(
            "SELECT sandbox_id, status, timeout_at FROM sandboxes"
            " WHERE sandbox_id = ANY($1::text[])",
            list(sandbox_ids),
        )
        return {r["sandbox_id"]: _known(r) for r in rows}


def _known(row: asyncpg.Record) -> Known:
    status = row["status"]
    return Known(row["sandbox_id"], Status(status) if status else None, row["timeout_at"])
