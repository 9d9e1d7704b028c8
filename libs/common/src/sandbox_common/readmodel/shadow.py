"""The Redis side of a rebuild (a replay, or Redis from PostgreSQL): status documents, project
pointers and the indexes written under shadow keys (pipelined, no per-document round trip),
then swapped in shard by shard, each shard by one Lua script, so a reader of a sandbox sees its
old document and index entries or the new ones, never a mix; the project pointers follow, each
by a compare-and-set of its own, and the completeness marker last.

The swap keeps what the live projector wrote after the rebuild read its input: the live document
of a sandbox with a higher revision than the rebuilt one (that write carries facts the rebuild
lacks), and the documents, index entries and project pointers of sandboxes created since, which
the rebuild never saw. Only sandboxes that were live before the rebuild's last read and that it
does not know are removed (`mark_stale`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import redis.asyncio as aioredis

from sandbox_common import redis_pool
from sandbox_common.policies import Placed
from sandbox_common.readmodel import keys
from sandbox_common.readmodel.document import (
    DocSource,
    Status,
    StatusDoc,
    encode_doc,
    transitional_since,
)
from sandbox_common.readmodel.feed import reset_entry
from sandbox_common.readmodel.marker import Written
from sandbox_common.readmodel.marker import encode as encode_marker
from sandbox_common.readmodel.policies import PolicyWriter
from sandbox_common.readmodel.redis_text import text

_CHUNK = 2000
# Enough for the reset entry: the feed's own writers trim it to their configured length.
_FEED_LENGTH = 50_000

# One shard's swap. Every key is in KEYS, all of the shard's slot.
# KEYS: the N live indexes, their N shadows, shadow ids, shadow stale, then the live documents
#       of the rebuilt ids, their shadows, and the live documents of the stale ids (N: INDEXES).
# ARGV: stale-up-to revision, number of rebuilt ids, number of stale ids, the rebuilt ids, the
#       stale ids.
# Returns {swapped, removed, kept id...}.
_SWAP_SHARD = """
local base = tonumber(ARGV[1])
local n_ids, n_stale = tonumber(ARGV[2]), tonumber(ARGV[3])
local ids, stale_ids, rebuilt, stale = {}, {}, {}, {}
for i = 1, n_ids do ids[i] = ARGV[3 + i]; rebuilt[ids[i]] = true end
for i = 1, n_stale do stale_ids[i] = ARGV[3 + n_ids + i]; stale[stale_ids[i]] = true end
local n = INDEXES
local indexes, shadow_indexes = {}, {}
for j = 1, n do indexes[j] = KEYS[j]; shadow_indexes[j] = KEYS[n + j] end
local first = 2 * n + 2  -- the last key before the documents
local function rev(key) return tonumber(redis.call('HGET', key, 'r') or '-1') end
local kept = {}
local answer = {0, 0}
for i, id in ipairs(ids) do
  local live, shadow = KEYS[first + i], KEYS[first + n_ids + i]
  if rev(live) > rev(shadow) then
    local scores = {}
    for j, index in ipairs(indexes) do scores[j] = redis.call('ZSCORE', index, id) end
    kept[#kept + 1] = {id, scores}
    answer[#answer + 1] = id
    redis.call('DEL', shadow)
  else
    redis.call('RENAME', shadow, live)
    answer[1] = answer[1] + 1
  end
end
-- A sandbox the rebuild never saw and that is not stale was written live after the rebuild's
-- input was read (created since): it keeps its index entries.
for j, key in ipairs(indexes) do
  local live = redis.call('ZRANGE', key, 0, -1, 'WITHSCORES')
  for i = 1, #live, 2 do
    if not rebuilt[live[i]] and not stale[live[i]] then
      redis.call('ZADD', shadow_indexes[j], live[i + 1], live[i])
    end
  end
  if redis.call('EXISTS', shadow_indexes[j]) == 1 then
    redis.call('RENAME', shadow_indexes[j], key)
  else
    redis.call('DEL', key)
  end
end
for _, k in ipairs(kept) do
  for j, index in ipairs(indexes) do
    local score = k[2][j]
    if score then redis.call('ZADD', index, score, k[1]) else redis.call('ZREM', index, k[1]) end
  end
end
for i, id in ipairs(stale_ids) do
  local doc = KEYS[first + 2 * n_ids + i]
  if rev(doc) <= base then
    redis.call('DEL', doc)
    for _, index in ipairs(indexes) do redis.call('ZREM', index, id) end
    answer[2] = answer[2] + 1
  end
end
redis.call('DEL', KEYS[2 * n + 1], KEYS[2 * n + 2])
return answer
""".replace("'r'", repr(keys.REVISION_FIELD)).replace("INDEXES", str(len(keys.Layout().indexes(0))))

# A project's pointer: the rebuilt one replaces the live one unless the live projector moved it
# since it was read (ARGV[1], '' = none) or it names a sandbox the live projector chose (ARGV[2]
# '1'). KEYS: live pointer, its shadow (one slot: the project's tag).
_SWAP_POINTER = """
local current = redis.call('GET', KEYS[1]) or ''
if current == ARGV[1] and ARGV[2] == '0' then
  redis.call('RENAME', KEYS[2], KEYS[1])
  return 1
end
redis.call('DEL', KEYS[2])
return 0
"""


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


@dataclass
class _Swapped:
    """What the shard swaps did, for the pointers' turn."""

    rebuilt: set[str] = field(default_factory=set)
    stale: set[str] = field(default_factory=set)
    kept: set[str] = field(default_factory=set)
    swapped: int = 0
    removed: int = 0

    def live_choice(self, sandbox_id: str) -> bool:
        """A sandbox whose live document won: kept newer, or written since (never rebuilt)."""
        return sandbox_id in self.kept or (
            sandbox_id not in self.rebuilt and sandbox_id not in self.stale
        )


def swap_call(
    layout: keys.Layout, shard: int, ids: Sequence[str], stale: Sequence[str], base: int
) -> redis_pool.ScriptCall:
    """The shard swap's keys and arguments (pure: the unit tests check the slot)."""
    live = layout.indexes(shard)
    script_keys = [*live, *(keys.shadow(k) for k in live)]
    script_keys += [layout.shadow_ids(shard), layout.shadow_stale(shard)]
    script_keys += [layout.doc(i) for i in ids]
    script_keys += [keys.shadow(layout.doc(i)) for i in ids]
    script_keys += [layout.doc(i) for i in stale]
    return script_keys, [base, len(ids), len(stale), *ids, *stale]


class ShadowWriter:
    def __init__(
        self,
        client: aioredis.Redis,
        tombstone_ttl_seconds: int,
        layout: keys.Layout = keys.Layout(),  # noqa: B008 - frozen, shared
    ) -> None:
        self._client = client
        self._tombstone_ttl = tombstone_ttl_seconds
        self._layout = layout
        self._swap_shard = client.register_script(_SWAP_SHARD)
        self._swap_pointer = client.register_script(_SWAP_POINTER)
        self._policies = PolicyWriter(client)

    async def replace_policies(self, placed: Iterable[Placed]) -> None:
        """The rebuild's policies in force, whole (the actuator reads them from here)."""
        await self._policies.replace_all(placed)

    async def clear(self) -> None:
        """Drops what an interrupted rebuild left under the shadow keys."""
        await self._unlink_matching(keys.SHADOW_PATTERN, lambda _key: True)

    async def drop_foreign(self) -> None:
        """Drops the read-model keys of another layout (the unsharded one, another shard
        count): nothing reads them any more, and they would hold memory for ever."""
        await self._unlink_matching(keys.LIVE_PATTERN, self._layout.foreign)

    async def _unlink_matching(self, pattern: str, chosen: Any) -> None:
        batch: list[bytes] = []
        async for key in self._client.scan_iter(match=pattern, count=5000):
            if not chosen(text(key)):
                continue
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

    def _ttl(self, doc: StatusDoc, now: datetime) -> int | None:
        """0: keep; None: an expired tombstone (the live one has expired by now as well)."""
        if doc.status is not Status.KILLED:
            return 0
        killed_at = doc.status_changed_at or now
        ttl = int(self._tombstone_ttl - (now - killed_at).total_seconds())
        return ttl if ttl > 0 else None

    async def _write_chunk(self, docs: Sequence[StatusDoc], now: datetime) -> int:
        # shard -> index (idle, transitional, hard end, delete) -> member -> score
        scores: defaultdict[int, tuple[dict[str, float], ...]] = defaultdict(
            lambda: ({}, {}, {}, {})
        )
        ids: defaultdict[int, list[str]] = defaultdict(list)
        async with self._client.pipeline(transaction=False) as pipe:
            for doc in docs:
                ttl = self._ttl(doc, now)
                if ttl is None:
                    continue
                key = keys.shadow(self._layout.doc(doc.sandbox_id))
                pipe.hset(
                    key,
                    mapping={keys.REVISION_FIELD: doc.revision, keys.DOC_FIELD: encode_doc(doc)},
                )
                if ttl:
                    pipe.expire(key, ttl)
                shard = self._layout.shard(doc.sandbox_id)
                ids[shard].append(doc.sandbox_id)
                idle, trans, hard_ends, deletes = scores[shard]
                since = transitional_since(doc)
                for index, at in (
                    (idle, doc.idle_deadline_at),
                    (trans, since),
                    (hard_ends, doc.max_lifetime_at),
                    (deletes, doc.delete_at),
                ):
                    if at is not None:
                        index[doc.sandbox_id] = round(at.timestamp(), 3)
            for shard, shard_ids in ids.items():
                pipe.sadd(self._layout.shadow_ids(shard), *shard_ids)
                for name, found in zip(self._layout.indexes(shard), scores[shard], strict=True):
                    # A catch-up rewrite can take a sandbox out of an index: drop it there.
                    absent = [i for i in shard_ids if i not in found]
                    if absent:
                        pipe.zrem(keys.shadow(name), *absent)
                    if found:
                        pipe.zadd(keys.shadow(name), found)
            await pipe.execute()
        return sum(len(i) for i in ids.values())

    async def write_pointers(self, chosen: dict[str, str]) -> None:
        items = list(chosen.items())
        for start in range(0, len(items), _CHUNK):
            chunk = items[start : start + _CHUNK]
            async with self._client.pipeline(transaction=False) as pipe:
                for project, sandbox in chunk:  # SETs, not MSET: one slot per project
                    pipe.set(keys.shadow(keys.project_sandbox(project)), sandbox)
                pipe.sadd(keys.SHADOW_PROJECTS, *(p for p, _ in chunk))
                await pipe.execute()

    async def mark_stale(self, sandbox_ids: Iterable[str]) -> None:
        by_shard: defaultdict[int, list[str]] = defaultdict(list)
        for sandbox_id in sandbox_ids:
            by_shard[self._layout.shard(sandbox_id)].append(sandbox_id)
        for shard, stale in by_shard.items():
            for start in range(0, len(stale), _CHUNK):
                await self._client.sadd(
                    self._layout.shadow_stale(shard), *stale[start : start + _CHUNK]
                )

    async def swap(self, stale_up_to_revision: int, written: Written) -> tuple[int, int, int]:
        """Shard by shard (each atomically) shadow -> live, then the project pointers, then one
        reset entry on the change feed (status-api's streams re-read everything, once, from the
        whole new model), then the completeness marker (naming these primaries). Returns
        (swapped, kept live, stale removed). Interrupted half way, the marker is not written
        (or still names the old layout or servers): the next check rebuilds again."""
        marker = await encode_marker(self._client, written, self._layout)
        done = _Swapped()
        for shard in self._layout.all:
            await self._swap_one(shard, stale_up_to_revision, done)
        await self._swap_pointers(done)
        await self._client.delete(keys.SHADOW_PROJECTS)
        await self._client.xadd(
            self._layout.changes(0), reset_entry(), maxlen=_FEED_LENGTH, approximate=True
        )
        await self._client.set(keys.READ_MODEL_MARKER, marker)
        return done.swapped, len(done.kept), done.removed

    async def _swap_one(self, shard: int, base: int, done: _Swapped) -> None:
        async with self._client.pipeline(transaction=False) as pipe:
            pipe.smembers(self._layout.shadow_ids(shard))
            pipe.smembers(self._layout.shadow_stale(shard))
            raw_ids, raw_stale = await pipe.execute()
        ids, stale = sorted(map(text, raw_ids)), sorted(map(text, raw_stale))
        call = swap_call(self._layout, shard, ids, stale, base)
        (answer,) = await redis_pool.run_script(self._client, self._swap_shard, [call])
        done.rebuilt.update(ids)
        done.stale.update(stale)
        done.swapped += int(answer[0])
        done.removed += int(answer[1])
        done.kept.update(text(k) for k in answer[2:])

    async def _swap_pointers(self, done: _Swapped) -> None:
        projects = sorted(text(p) for p in await self._client.smembers(keys.SHADOW_PROJECTS))
        for start in range(0, len(projects), _CHUNK):
            chunk = projects[start : start + _CHUNK]
            async with self._client.pipeline(transaction=False) as pipe:
                for project in chunk:
                    pipe.get(keys.project_sandbox(project))
                current = [text(c) if c else "" for c in await pipe.execute()]
            named = [c for c in current if c]
            async with self._client.pipeline(transaction=False) as pipe:
                for sandbox in named:
                    pipe.exists(self._layout.doc(sandbox))
                exists = dict(zip(named, await pipe.execute(), strict=True))
            calls: list[redis_pool.ScriptCall] = []
            for project, sandbox in zip(chunk, current, strict=True):
                live = bool(sandbox) and bool(exists[sandbox]) and done.live_choice(sandbox)
                pointer = keys.project_sandbox(project)
                calls.append(([pointer, keys.shadow(pointer)], [sandbox, "1" if live else "0"]))
            await redis_pool.run_script(self._client, self._swap_pointer, calls)
