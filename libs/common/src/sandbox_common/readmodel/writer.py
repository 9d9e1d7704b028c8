"""The live writer of the read model: status documents, with the idle-deadline, transitional and
hard-end indexes, the project pointers and the change feed moved in the same step."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec
import redis.asyncio as aioredis

from sandbox_common.readmodel import keys
from sandbox_common.readmodel.document import Status, StatusDoc, encode_doc, transitional_since
from sandbox_common.readmodel.feed import ChangeKind, LuaEntry, lua_xadd

_encoder = msgspec.json.Encoder()

# Compare-and-set on the revision: a replayed or late write never regresses a document. The
# idle-deadline index moves in the same step, so the enforcer never sees one without the other,
# and so does the change feed entry: an SSE client that sees the entry can read the document.
# One call writes a whole chunk of documents, given as one JSON array: per-document arguments
# cost more to pack on the client than the writes cost Redis. Keys are derived inside the
# script from their prefixes (one Redis instance; not for Redis Cluster).
# KEYS: deadline index, transitional index, change feed, hard-end index.
# ARGV: the entries, change feed length, document key prefix, project pointer prefix and suffix.
# Entry: [revision, document, ttl seconds (0 = keep), sandbox id, live project ('' = none),
#         idle deadline epoch s ('' = not running: leave the index),
#         since when PAUSING/STARTING epoch s ('' = neither), project id ('' = none),
#         E2B's hard end epoch s ('' = not running or unknown)].
_WRITE_DOCS = f"""
local entries = cjson.decode(ARGV[1])
local feed_length, doc_prefix = ARGV[2], ARGV[3]
local pointer_prefix, pointer_suffix = ARGV[4], ARGV[5]
local written = 0
for _, e in ipairs(entries) do
  local revision, doc, ttl, sandbox = e[1], e[2], e[3], e[4]
  local key = doc_prefix .. sandbox
  local current = tonumber(redis.call('HGET', key, {keys.REVISION_FIELD!r}) or '-1')
  if current < tonumber(revision) then
    redis.call('HSET', key, {keys.REVISION_FIELD!r}, revision, {keys.DOC_FIELD!r}, doc)
    if tonumber(ttl) > 0 then
      redis.call('EXPIRE', key, ttl)
    else
      redis.call('PERSIST', key)
    end
    if e[5] ~= '' then redis.call('SET', pointer_prefix .. e[5] .. pointer_suffix, sandbox) end
    if e[6] == '' then
      redis.call('ZREM', KEYS[1], sandbox)
    else
      redis.call('ZADD', KEYS[1], e[6], sandbox)
    end
    if e[7] == '' then
      redis.call('ZREM', KEYS[2], sandbox)
    else
      redis.call('ZADD', KEYS[2], e[7], sandbox)
    end
    if e[9] == '' then
      redis.call('ZREM', KEYS[4], sandbox)
    else
      redis.call('ZADD', KEYS[4], e[9], sandbox)
    end
    {
    lua_xadd(
        "KEYS[3]", "feed_length", LuaEntry(ChangeKind.DOC, "e[8]", "sandbox", "revision", "doc")
    )
}
    written = written + 1
  end
end
return written
"""
# Documents per call: bounds how long one call holds Redis (a few ms).
_CHUNK = 500
_PROBE_TTL_MS = 30_000


def _entry(doc: StatusDoc, tombstone_ttl_seconds: int) -> list[str]:
    killed = doc.status is Status.KILLED
    # Tombstones expire; by then no late webhook for the sandbox is still in flight.
    ttl = tombstone_ttl_seconds if killed else 0
    # No pointer for a killed sandbox, nor for an empty project id (metadata `projectId: ""`):
    # the script takes '' as "none".
    live_project = doc.project_id if not killed else None
    deadline = doc.idle_deadline_at
    since = transitional_since(doc)
    hard_end = doc.max_lifetime_at
    return [
        str(doc.revision),
        encode_doc(doc).decode(),
        str(ttl),
        doc.sandbox_id,
        live_project or "",
        f"{deadline.timestamp():.3f}" if deadline else "",
        f"{since.timestamp():.3f}" if since else "",
        doc.project_id or "",
        f"{hard_end.timestamp():.3f}" if hard_end else "",
    ]


class DocumentWriter:
    def __init__(
        self, client: aioredis.Redis, tombstone_ttl_seconds: int, change_feed_max_length: int
    ) -> None:
        self._client = client
        self._feed_length = change_feed_max_length
        self._tombstone_ttl = tombstone_ttl_seconds
        self._script = client.register_script(_WRITE_DOCS)
        self._doc_prefix = keys.sandbox_doc("")
        self._pointer_prefix, self._pointer_suffix = keys.project_sandbox("\x00").split("\x00")

    async def write(self, docs: Sequence[StatusDoc]) -> None:
        """Each document replaces the stored one only if its revision is higher."""
        entries = [_entry(doc, self._tombstone_ttl) for doc in docs]
        if not entries:
            return
        async with self._client.pipeline(transaction=False) as pipe:
            for i in range(0, len(entries), _CHUNK):
                await self._script(
                    keys=[keys.IDLE_DEADLINES, keys.TRANSITIONAL, keys.CHANGES, keys.HARD_ENDS],
                    args=[
                        _encoder.encode(entries[i : i + _CHUNK]),
                        self._feed_length,
                        self._doc_prefix,
                        self._pointer_prefix,
                        self._pointer_suffix,
                    ],
                    client=pipe,
                )
            await pipe.execute()

    async def ping(self) -> None:
        """Raises unless Redis takes a write (a PING alone passes on a full or read-only one)."""
        await self._client.set(keys.WRITE_PROBE, b"1", px=_PROBE_TTL_MS)
