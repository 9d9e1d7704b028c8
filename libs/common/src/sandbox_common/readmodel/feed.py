"""The change feed: one Redis stream entry per read-model change, pushed to SSE clients.

Written by the projector (a status document changed, in the same Lua step as the document) and
by status-api (a pause warning, once per deadline); read by every status-api process. One stream
per read-model shard (the sandbox's, keys.Layout): a reader follows them all and tells where it
is with a `Cursor`, one entry id per shard. One place for the entry shape, so writers (Lua
scripts) and the reader agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

import redis.asyncio as aioredis
from redis.exceptions import ResponseError
from redis.typing import EncodableT, FieldT

from sandbox_common import redis_pool
from sandbox_common.readmodel import keys
from sandbox_common.readmodel.redis_text import text


class ChangeKind(StrEnum):
    DOC = "doc"  # data: the StatusDoc JSON as the projector wrote it
    WARNING = "warning"  # data: a pause warning (status-api's PauseWarning JSON)
    LIFETIME = "lifetime"  # data: E2B's hard end is near (status-api's LifetimeWarning JSON)
    DELETE = "delete"  # data: a policy deletes the paused sandbox soon (DeleteWarning JSON)
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
    id: str  # the entry id ("<ms>-<seq>") in its shard's stream
    shard: int
    kind: ChangeKind
    project_id: str | None
    sandbox_id: str
    revision: int
    data: bytes


def from_entry(entry_id: bytes | str, fields: dict[bytes, bytes], shard: int = 0) -> Change | None:
    """None for an entry this version does not understand (skipped, never fatal)."""
    try:
        kind = ChangeKind(fields[KIND.encode()].decode())
        project = fields.get(PROJECT.encode(), b"").decode()
        return Change(
            id=entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
            shard=shard,
            kind=kind,
            project_id=project or None,
            sandbox_id=fields[SANDBOX.encode()].decode(),
            revision=int(fields.get(REVISION.encode(), b"0")),
            data=fields[DATA.encode()],
        )
    except (KeyError, ValueError, UnicodeDecodeError):
        return None


Position = tuple[int, int]


def entry_position(entry_id: str) -> Position:
    """Stream ids order as (milliseconds, sequence); raises ValueError when malformed."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def entry_id(position: Position) -> str:
    return f"{position[0]}-{position[1]}"


_CURSOR_MARK = "c"


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a reader of the sharded feed is: the last entry it has of each shard's stream. It
    is the SSE event id (opaque to clients), so a client that resumes with it gets exactly what
    it missed in every shard. Encoded compactly: the newest millisecond once, then each shard's
    distance back from it (base 36), and its sequence number when not 0."""

    positions: tuple[Position, ...]

    @classmethod
    def start(cls, shards: int) -> Cursor:
        return cls(((0, 0),) * shards)

    def at(self, shard: int) -> Position:
        return self.positions[shard]

    def moved(self, shard: int, position: Position) -> Cursor:
        if position <= self.positions[shard]:
            return self
        changed = list(self.positions)
        changed[shard] = position
        return Cursor(tuple(changed))

    def joined(self, other: Cursor) -> Cursor:
        """Each shard at the later of the two positions."""
        return Cursor(tuple(map(max, self.positions, other.positions)))

    def encode(self) -> str:
        top = max(ms for ms, _ in self.positions)
        parts = [_CURSOR_MARK + _b36(top)]
        for ms, seq in self.positions:
            parts.append(_b36(top - ms) + (f"-{_b36(seq)}" if seq else ""))
        return ".".join(parts)

    @classmethod
    def decode(cls, text: str, shards: int) -> Cursor:
        """Raises ValueError for anything that is not a cursor of this many shards (an id of
        the feed before it was sharded, another shard count, garbage)."""
        head, *rest = text.split(".")
        if not head.startswith(_CURSOR_MARK) or len(rest) != shards:
            raise ValueError(f"not a change feed cursor of {shards} shards")
        top = int(head[1:], 36)
        positions = []
        for part in rest:
            back, _, seq = part.partition("-")
            ms = top - int(back, 36)
            if ms < 0:
                raise ValueError("a cursor position before the epoch")
            positions.append((ms, int(seq, 36) if seq else 0))
        return cls(tuple(positions))


def _b36(n: int) -> str:
    if n < 0:
        raise ValueError("negative")
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = digits[r] + out
        if n == 0:
            return out


def reset_entry() -> dict[FieldT, EncodableT]:
    """The fields of a RESET entry (a rebuild swapped the whole model in)."""
    return {KIND: ChangeKind.RESET.value, PROJECT: "", SANDBOX: "", REVISION: "0", DATA: ""}


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
    """The feed's Redis side: following a shard's stream, reading back from an entry, adding
    warnings (each to its sandbox's shard)."""

    def __init__(
        self,
        client: aioredis.Redis,
        max_length: int = 50_000,
        layout: keys.Layout = keys.Layout(),  # noqa: B008 - frozen, shared
    ) -> None:
        self._client = client
        self._max_length = max_length
        self.layout = layout
        self._warn_once = client.register_script(_WARN_ONCE)

    async def newest_id(self, shard: int) -> str | None:
        newest: Any = await self._client.xrevrange(self.layout.changes(shard), count=1)
        return text(newest[0][0]) if newest else None

    async def oldest_id(self, shard: int) -> str | None:
        oldest: Any = await self._client.xrange(self.layout.changes(shard), count=1)
        return text(oldest[0][0]) if oldest else None

    async def kept_from(self, shard: int) -> Position | None:
        """Where the shard's stream begins if it was ever trimmed (None: no stream, or never
        trimmed: every entry it had is there). A reader at a position before it may have
        missed trimmed entries; one at or after it has them all."""
        try:
            info: Any = await self._client.xinfo_stream(self.layout.changes(shard))
        except ResponseError:  # no such key: nothing written, nothing trimmed
            return None
        if int(info.get("entries-added", 0)) <= int(info.get("length", 0)):
            return None
        first = info.get("first-entry")
        if first:
            return entry_position(text(first[0]))
        newest = entry_position(text(info.get("last-generated-id", "0-0")))
        return newest[0], newest[1] + 1

    async def after(
        self, shard: int, entry_id: str, count: int
    ) -> list[tuple[Any, dict[bytes, bytes]]]:
        """Up to `count` entries after `entry_id` (raw: decode with `from_entry`)."""
        stream = self.layout.changes(shard)
        entries: Any = await self._client.xrange(stream, min=f"({entry_id}", count=count)
        return list(entries)

    async def follow(
        self, shard: int, last_id: str, block_ms: int, count: int
    ) -> list[tuple[Any, dict[bytes, bytes]]]:
        """The entries after `last_id`, waiting up to `block_ms` for one (raw, like `after`).
        One shard a call: a cluster serves one slot per command."""
        stream = self.layout.changes(shard)
        answer: Any = await self._client.xread({stream: last_id}, block=block_ms, count=count)
        return [entry for _stream, entries in answer or () for entry in entries]

    async def warn_once(self, warnings: Sequence[Warning], marker_ttl_seconds: int) -> list[bool]:
        """One answer per warning, all in one round trip (on one Redis): False when that
        deadline was already warned about (by any replica)."""
        calls = [
            (
                [
                    self.layout.pause_warned(w.sandbox_id, w.deadline_key),
                    self.layout.changes(self.layout.shard(w.sandbox_id)),
                ],
                [
                    marker_ttl_seconds,
                    self.layout.stream_length(self._max_length),
                    w.project_id or "",
                    w.sandbox_id,
                    w.revision,
                    w.payload,
                    w.kind.value,
                ],
            )
            for w in warnings
        ]
        answers = await redis_pool.run_script(self._client, self._warn_once, calls)
        return [bool(answer) for answer in answers]
