"""The change feed: one Redis stream entry per read-model change, pushed to SSE clients.

Written by the projector (a status document changed, in the same Lua step as the document) and
by status-api (a pause warning, once per deadline); read by every status-api process. One place
for the entry shape, so writers (Lua scripts) and the reader agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

import redis.asyncio as aioredis

from sandbox_common.readmodel import keys
from sandbox_common.readmodel.redis_text import text


class ChangeKind(StrEnum):
    DOC = "doc"  # data: the StatusDoc JSON as the projector wrote it
    WARNING = "warning"  # data: a pause warning (status-api's PauseWarning JSON)
    LIFETIME = "lifetime"  # data: E2B's hard end is near (status-api's LifetimeWarning JSON)
    # The whole read model was swapped (a replay, or a rebuild from PostgreSQL): no per-document
    # entries were written, so clients must be sent the current state afresh. Empty data.
    RESET = "reset"


# Field names of a stream entry (short: the stream holds tens of thousands of them).
KIND = "k"
PROJECT = "p"  # '' when the sandbox has no project
SANDBOX = "s"
REVISION = "r"  # the document revision the entry reflects
DATA = "d"


@dataclass(frozen=True, slots=True)
class Change:
    id: str  # the stream entry id ("<ms>-<seq>"), also the SSE event id
    kind: ChangeKind
    project_id: str | None
    sandbox_id: str
    revision: int
    data: bytes


def from_entry(entry_id: bytes | str, fields: dict[bytes, bytes]) -> Change | None:
    """None for an entry this version does not understand (skipped, never fatal)."""
    try:
        kind = ChangeKind(fields[KIND.encode()].decode())
        project = fields.get(PROJECT.encode(), b"").decode()
        return Change(
            id=entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
            kind=kind,
            project_id=project or None,
            sandbox_id=fields[SANDBOX.encode()].decode(),
            revision=int(fields.get(REVISION.encode(), b"0")),
            data=fields[DATA.encode()],
        )
    except (KeyError, ValueError, UnicodeDecodeError):
        return None


def entry_position(entry_id: str) -> tuple[int, int]:
    """Stream ids order as (milliseconds, sequence); raises ValueError when malformed."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


class LuaEntry(NamedTuple):
    """An entry's fields as Lua expressions (KEYS[5], ARGV[2], e[8], ...); `kind` is a Lua
    expression too, or a ChangeKind for a fixed one."""

    kind: ChangeKind | str
    project: str
    sandbox: str
    revision: str
    data: str


def lua_xadd(feed: str, max_length: str, entry: LuaEntry) -> str:
    """The Lua statement that appends one entry (`feed` and `max_length` are Lua expressions
    too). Approximate trimming keeps XADD O(1) and at least max_length entries."""
    kind = f"'{entry.kind.value}'" if isinstance(entry.kind, ChangeKind) else entry.kind
    return (
        f"redis.call('XADD', {feed}, 'MAXLEN', '~', {max_length}, '*', "
        f"'{KIND}', {kind}, '{PROJECT}', {entry.project}, "
        f"'{SANDBOX}', {entry.sandbox}, '{REVISION}', {entry.revision}, '{DATA}', {entry.data})"
    )


# The warning for one deadline goes out once, however many status-api replicas see it due.
# KEYS: warned marker, change feed. ARGV: marker ttl, feed length, project ('' = none),
#       sandbox id, revision, warning JSON, kind.
_WARNING = LuaEntry("ARGV[7]", "ARGV[3]", "ARGV[4]", "ARGV[5]", "ARGV[6]")
_WARN_ONCE = f"""
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
{lua_xadd("KEYS[2]", "ARGV[2]", _WARNING)}
return 1
"""


@dataclass(frozen=True, slots=True)
class Warning:
    """A warning about one of a sandbox's deadlines (`deadline_key` names the deadline, unique
    across kinds): its idle deadline (WARNING), or E2B's hard end (LIFETIME)."""

    sandbox_id: str
    project_id: str | None
    revision: int
    deadline_key: str
    payload: bytes
    kind: ChangeKind = ChangeKind.WARNING


class ChangeFeed:
    """The feed's Redis side: following it, reading back from an entry, adding warnings."""

    def __init__(self, client: aioredis.Redis, max_length: int = 50_000) -> None:
        self._client = client
        self._max_length = max_length
        self._warn_once = client.register_script(_WARN_ONCE)

    async def newest_id(self) -> str | None:
        newest: Any = await self._client.xrevrange(keys.CHANGES, count=1)
        return text(newest[0][0]) if newest else None

    async def oldest_id(self) -> str | None:
        oldest: Any = await self._client.xrange(keys.CHANGES, count=1)
        return text(oldest[0][0]) if oldest else None

    async def after(self, entry_id: str, count: int) -> list[tuple[Any, dict[bytes, bytes]]]:
        """Up to `count` entries after `entry_id` (raw: decode with `from_entry`)."""
        entries: Any = await self._client.xrange(keys.CHANGES, min=f"({entry_id}", count=count)
        return list(entries)

    async def follow(
        self, last_id: str, block_ms: int, count: int
    ) -> list[tuple[Any, dict[bytes, bytes]]]:
        """The entries after `last_id`, waiting up to `block_ms` for one (raw, like `after`)."""
        answer: Any = await self._client.xread({keys.CHANGES: last_id}, block=block_ms, count=count)
        return [entry for _stream, entries in answer or () for entry in entries]

    async def warn_once(self, warnings: Sequence[Warning], marker_ttl_seconds: int) -> list[bool]:
        """One answer per warning, all in one round trip: False when that deadline was
        already warned about (by any replica)."""
        async with self._client.pipeline(transaction=False) as pipe:
            for w in warnings:
                await self._warn_once(
                    keys=[keys.pause_warned(w.sandbox_id, w.deadline_key), keys.CHANGES],
                    args=[
                        marker_ttl_seconds,
                        self._max_length,
                        w.project_id or "",
                        w.sandbox_id,
                        w.revision,
                        w.payload,
                        w.kind.value,
                    ],
                    client=pipe,
                )
            return [bool(answer) for answer in await pipe.execute()]
