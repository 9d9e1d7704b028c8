"""Project API keys (`X-API-Key`): servers that are not browsers (an agent, an app's backend)
act for one project with a key made by `sandboxctl api-key create`, instead of a JWT.

A key's row is read from PostgreSQL once and kept for `ttl_seconds` (its absence too), so a
server sending heartbeats costs no query per call and a flood of made-up ids costs at most one
query per id per TTL; a revocation reaches every replica within that TTL.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from sandbox_common.api_key_rows import StoredKey
from sandbox_common.api_keys import ApiKeyError, key_id_of, matches
from status_api.auth import AuthError, Principal

# How long a key's row (or its absence) is trusted: the delay of a revocation.
TTL_SECONDS = 30.0
_CACHED = 10_000


class KeyStore(Protocol):
    async def find(self, key_id: str) -> StoredKey | None: ...


@dataclass(eq=False)
class ApiKeyVerifier:
    store: KeyStore
    clock: Callable[[], float] = time.monotonic
    ttl_seconds: float = TTL_SECONDS
    _rows: OrderedDict[str, tuple[StoredKey | None, float]] = field(
        default_factory=OrderedDict, init=False, repr=False
    )

    async def principal(self, key: str) -> Principal:
        """The project the key acts for; AuthError (401) for a malformed, unknown or revoked
        key, each saying which."""
        try:
            key_id = key_id_of(key)
        except ApiKeyError as exc:
            raise AuthError(str(exc)) from exc
        stored = await self._row(key_id)
        if stored is None or not matches(key, stored.digest):
            raise AuthError("unknown API key")
        if stored.revoked_at is not None:
            raise AuthError(f"API key {key_id} was revoked at {stored.revoked_at.isoformat()}")
        return Principal(
            subject=f"apikey:{key_id}",
            projects=frozenset({stored.project_id}),
            admin=False,
            token_id=f"apikey:{key_id}",
            api_key=True,
        )

    async def _row(self, key_id: str) -> StoredKey | None:
        now = self.clock()
        cached = self._rows.get(key_id)
        if cached is not None and now - cached[1] < self.ttl_seconds:
            return cached[0]
        stored = await self.store.find(key_id)
        self._rows[key_id] = (stored, now)
        self._rows.move_to_end(key_id)
        if len(self._rows) > _CACHED:
            self._rows.popitem(last=False)
        return stored
