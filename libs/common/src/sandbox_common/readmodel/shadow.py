"""The Redis side of a rebuild (a replay, or Redis from PostgreSQL): status documents, project
pointers and the indexes written under shadow keys (pipelined, no per-document round trip),
then swapped in by one Lua script, so readers see the old model or the new one, never a mix.

The swap keeps what the live projector wrote after the rebuild read its input: the live document
of a sandbox with a higher revision than the rebuilt one (that write carries facts the rebuild
lacks), and the documents, index entries and project pointers of sandboxes created since, which
the rebuild never saw. Only sandboxes that were live before the rebuild's last read and that it
does not know are removed (`mark_stale`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Protocol

import redis.asyncio as aioredis

from sandbox_common.readmodel import keys
from sandbox_common.readmodel.document import (
    DocSource,
    Status,
    StatusDoc,
    encode_doc,
    transitional_since,
)
from sandbox_common.readmodel.feed import ChangeKind, LuaEntry, lua_xadd
from sandbox_common.readmodel.marker import Written
from sandbox_common.readmodel.marker import encode as encode_marker

_CHUNK = 2000
# Enough for the reset entry: the feed's own writers trim it to their configured length.
_FEED_LENGTH = 50_000

_SWAP = """
local base, marker = tonumber(ARGV[1]), ARGV[2]
local doc_prefix, shadow_prefix = ARGV[3], ARGV[4]
local pointer_prefix, pointer_suffix = ARGV[5], ARGV[6]
local indexes = {KEYS[1], KEYS[2], KEYS[8]}
local function rev(key) return tonumber(redis.call('HGET', key, 'r') or '-1') end
local kept, kept_ids = {}, {}
local swapped = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  local live, shadow = doc_prefix .. id, shadow_prefix .. doc_prefix .. id
  if rev(live) > rev(shadow) then
    local scores = {}
    for i, index in ipairs(indexes) do scores[i] = redis.call('ZSCORE', index, id) end
    kept[#kept + 1] = {id, scores}
    kept_ids[id] = true
    redis.call('DEL', shadow)
  else
    redis.call('RENAME', shadow, live)
    swapped = swapped + 1
  end
end
-- A sandbox the rebuild never saw and that is not stale was written live after the rebuild's
-- offsets (created since): it keeps its index entries and the pointer to it.
local function written_since(id)
  return redis.call('SISMEMBER', KEYS[3], id) == 0 and redis.call('SISMEMBER', KEYS[4], id) == 0
end
for _, key in ipairs(indexes) do
  local shadow_index = shadow_prefix .. key
  local live = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  for i = 1, #live, 2 do
    if written_since(live[i]) then redis.call('ZADD', shadow_index, live[i + 1], live[i]) end
  end
  if redis.call('EXISTS', shadow_index) == 1 then
    redis.call('RENAME', shadow_index, key)
  else
    redis.call('DEL', key)
  end
end
for _, k in ipairs(kept) do
  for i, index in ipairs(indexes) do
    local score = k[2][i]
    if score then redis.call('ZADD', index, score, k[1]) else redis.call('ZREM', index, k[1]) end
  end
end
for _, project in ipairs(redis.call('SMEMBERS', KEYS[5])) do
  local pointer = pointer_prefix .. project .. pointer_suffix
  local current = redis.call('GET', pointer)
  local live_choice = current and redis.call('EXISTS', doc_prefix .. current) == 1
    and (kept_ids[current] or written_since(current))
  if live_choice then
    redis.call('DEL', shadow_prefix .. pointer)
  else
    redis.call('RENAME', shadow_prefix .. pointer, pointer)
  end
end
local removed = 0
for _, id in ipairs(redis.call('SMEMBERS', KEYS[4])) do
  if rev(doc_prefix .. id) <= base then
    redis.call('DEL', doc_prefix .. id)
    for _, index in ipairs(indexes) do redis.call('ZREM', index, id) end
    removed = removed + 1
  end
end
redis.call('DEL', KEYS[3], KEYS[4], KEYS[5])
redis.call('SET', KEYS[6], marker)
LUA_RESET
return {swapped, #kept, removed}
""".replace("'r'", repr(keys.REVISION_FIELD)).replace(
    "LUA_RESET",
    # Clients following the change feed are told to re-read everything (status-api's streams).
    lua_xadd("KEYS[7]", "ARGV[7]", LuaEntry(ChangeKind.RESET, "''", "''", "0", "''")),
)


class PointerSource(DocSource, Protocol):
    """What the choice of a project's sandbox is made from (the projector's state)."""

    @property
    def last_event_at(self) -> datetime | None: ...


def pointers(states: Iterable[PointerSource]) -> dict[str, str]:
    """project -> the sandbox it serves: its live (not killed) sandbox with the latest fact.
    Projects whose sandboxes are all killed get none (status-api answers 404 either way)."""
    best: dict[str, tuple[datetime, str]] = {}
    for s in states:
        if s.project_id is None or s.status is None or s.status is Status.KILLED:
            continue
        key = (s.last_event_at or datetime.min.replace(tzinfo=UTC), s.sandbox_id)
        if s.project_id not in best or key > best[s.project_id]:
            best[s.project_id] = key
    return {project: sid for project, (_, sid) in best.items()}


class ShadowWriter:
    def __init__(self, client: aioredis.Redis, tombstone_ttl_seconds: int) -> None:
        self._client = client
        self._tombstone_ttl = tombstone_ttl_seconds
        self._swap = client.register_script(_SWAP)

    async def clear(self) -> None:
        """Drops what an interrupted rebuild left under the shadow keys."""
        batch: list[bytes] = []
        async for key in self._client.scan_iter(match=keys.SHADOW_PATTERN, count=5000):
            batch.append(key)
            if len(batch) >= _CHUNK:
                await self._client.unlink(*batch)
                batch = []
        if batch:
            await self._client.unlink(*batch)

    async def write(self, docs: Sequence[StatusDoc], now: datetime) -> int:
        """Documents and index entries under shadow keys; returns the documents written (an
        expired tombstone is not)."""
        written = 0
        for start in range(0, len(docs), _CHUNK):
            written += await self._write_chunk(docs[start : start + _CHUNK], now)
        return written

    async def _write_chunk(self, docs: Sequence[StatusDoc], now: datetime) -> int:
        idle: dict[str, float] = {}
        trans: dict[str, float] = {}
        hard_ends: dict[str, float] = {}
        ids: list[str] = []
        async with self._client.pipeline(transaction=False) as pipe:
            for doc in docs:
                ttl = 0
                if doc.status is Status.KILLED:
                    killed_at = doc.status_changed_at or now
                    ttl = int(self._tombstone_ttl - (now - killed_at).total_seconds())
                    if ttl <= 0:
                        continue  # the live tombstone has expired by now as well
                key = keys.shadow(keys.sandbox_doc(doc.sandbox_id))
                pipe.hset(
                    key,
                    mapping={keys.REVISION_FIELD: doc.revision, keys.DOC_FIELD: encode_doc(doc)},
                )
                if ttl:
                    pipe.expire(key, ttl)
                ids.append(doc.sandbox_id)
                if doc.idle_deadline_at is not None:
                    idle[doc.sandbox_id] = round(doc.idle_deadline_at.timestamp(), 3)
                since = transitional_since(doc)
                if since is not None:
                    trans[doc.sandbox_id] = round(since.timestamp(), 3)
                if doc.max_lifetime_at is not None:
                    hard_ends[doc.sandbox_id] = round(doc.max_lifetime_at.timestamp(), 3)
            if ids:
                pipe.sadd(keys.SHADOW_IDS, *ids)
            indexes = (
                (keys.IDLE_DEADLINES, idle),
                (keys.TRANSITIONAL, trans),
                (keys.HARD_ENDS, hard_ends),
            )
            for index, scores in indexes:
                # A catch-up rewrite can take a sandbox out of an index: drop it there.
                absent = [i for i in ids if i not in scores]
                if absent:
                    pipe.zrem(keys.shadow(index), *absent)
                if scores:
                    pipe.zadd(keys.shadow(index), scores)
            await pipe.execute()
        return len(ids)

    async def write_pointers(self, chosen: dict[str, str]) -> None:
        items = list(chosen.items())
        for start in range(0, len(items), _CHUNK):
            chunk = items[start : start + _CHUNK]
            async with self._client.pipeline(transaction=False) as pipe:
                pipe.mset({keys.shadow(keys.project_sandbox(p)): sid for p, sid in chunk})
                pipe.sadd(keys.SHADOW_PROJECTS, *(p for p, _ in chunk))
                await pipe.execute()

    async def mark_stale(self, sandbox_ids: Iterable[str]) -> None:
        stale = list(sandbox_ids)
        for start in range(0, len(stale), _CHUNK):
            await self._client.sadd(keys.SHADOW_STALE, *stale[start : start + _CHUNK])

    async def swap(self, stale_up_to_revision: int, written: Written) -> tuple[int, int, int]:
        """Atomically: shadow -> live, and the completeness marker set (naming this Redis).
        Returns (swapped, kept live, stale removed)."""
        marker = await encode_marker(self._client, written)
        pointer_prefix, pointer_suffix = keys.project_sandbox("\x00").split("\x00")
        result = await self._swap(
            keys=[
                keys.IDLE_DEADLINES,
                keys.TRANSITIONAL,
                keys.SHADOW_IDS,
                keys.SHADOW_STALE,
                keys.SHADOW_PROJECTS,
                keys.READ_MODEL_MARKER,
                keys.CHANGES,
                keys.HARD_ENDS,
            ],
            args=[
                stale_up_to_revision,
                marker,
                keys.sandbox_doc(""),
                keys.shadow(""),
                pointer_prefix,
                pointer_suffix,
                _FEED_LENGTH,
            ],
        )
        swapped, kept, removed = (int(x) for x in result)
        return swapped, kept, removed
