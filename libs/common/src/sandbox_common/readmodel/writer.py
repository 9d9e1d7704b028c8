"""The live writer of the read model: status documents, with their shard's idle-deadline,
transitional and hard-end indexes and change stream moved in the same step, then the project
pointers."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import msgspec
import redis.asyncio as aioredis

from sandbox_common import redis_pool
from sandbox_common.readmodel import keys
from sandbox_common.readmodel.document import Status, StatusDoc, encode_doc, transitional_since
from sandbox_common.readmodel.feed import ChangeKind, LuaEntry, lua_xadd
from sandbox_common.readmodel.redis_text import text

_encoder = msgspec.json.Encoder()

# Compare-and-set on the revision: a replayed or late write never regresses a document. The
# shard's idle-deadline index moves in the same step, so the enforcer never sees one without the
# other, and so does the change stream entry: an SSE client that sees the entry can read the
# document. One call writes a chunk of one shard's documents, given as one JSON array:
# per-document arguments cost more to pack on the client than the writes cost Redis. Every key
# is passed in KEYS (one slot: the shard's tag), none is built inside the script.
# KEYS: deadline index, transitional index, change stream, hard-end index, delete index, then
#       the documents.
# ARGV: the entries (in the order of the document keys), change stream length.
# Entry: [revision, document, ttl seconds (0 = keep), sandbox id, live project ('' = none),
#         idle deadline epoch s ('' = not running: leave the index),
#         since when PAUSING/STARTING epoch s ('' = neither), project id ('' = none),
#         E2B's hard end epoch s ('' = not running or unknown),
#         a policy's delete time epoch s ('' = not paused, or none)].
# Returns the live projects and their sandboxes whose document now holds the entry's revision
# (written now, or by an earlier try of this same write): their pointers are set next.
_WRITE_DOCS = f"""
local entries = cjson.decode(ARGV[1])
local feed_length = ARGV[2]
local pointers = {{}}
for i, e in ipairs(entries) do
  local revision, doc, ttl, sandbox = e[1], e[2], e[3], e[4]
  local key = KEYS[5 + i]
  local current = tonumber(redis.call('HGET', key, {keys.REVISION_FIELD!r}) or '-1')
  if current < tonumber(revision) then
    redis.call('HSET', key, {keys.REVISION_FIELD!r}, revision, {keys.DOC_FIELD!r}, doc)
    if tonumber(ttl) > 0 then
      redis.call('EXPIRE', key, ttl)
    else
      redis.call('PERSIST', key)
    end
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
    if e[10] == '' then
      redis.call('ZREM', KEYS[5], sandbox)
    else
      redis.call('ZADD', KEYS[5], e[10], sandbox)
    end
    {
    lua_xadd(
        "KEYS[3]", "feed_length", LuaEntry(ChangeKind.DOC, "e[8]", "sandbox", "revision", "doc")
    )
}
  end
  if current <= tonumber(revision) and e[5] ~= '' then
    pointers[#pointers + 1] = e[5]
    pointers[#pointers + 1] = sandbox
  end
end
return pointers
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
    delete_at = doc.delete_at
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
        f"{delete_at.timestamp():.3f}" if delete_at else "",
    ]


def script_calls(
    layout: keys.Layout, docs: Sequence[StatusDoc], tombstone_ttl_seconds: int, feed_length: int
) -> list[redis_pool.ScriptCall]:
    """The document script's calls for `docs`: one per chunk of one shard's documents, each
    naming only keys of that shard (pure: the unit tests check the slots)."""
    by_shard: defaultdict[int, list[StatusDoc]] = defaultdict(list)
    for doc in docs:
        by_shard[layout.shard(doc.sandbox_id)].append(doc)
    calls: list[redis_pool.ScriptCall] = []
    stream_length = layout.stream_length(feed_length)
    for shard, shard_docs in sorted(by_shard.items()):
        idle, transitional, hard_ends, deletes = layout.indexes(shard)
        for i in range(0, len(shard_docs), _CHUNK):
            chunk = shard_docs[i : i + _CHUNK]
            entries = [_entry(doc, tombstone_ttl_seconds) for doc in chunk]
            script_keys = [idle, transitional, layout.changes(shard), hard_ends, deletes]
            script_keys += [layout.doc(doc.sandbox_id) for doc in chunk]
            calls.append((script_keys, [_encoder.encode(entries), stream_length]))
    return calls


class DocumentWriter:
    def __init__(
        self,
        client: aioredis.Redis,
        tombstone_ttl_seconds: int,
        change_feed_max_length: int,
        layout: keys.Layout = keys.Layout(),  # noqa: B008 - frozen, shared
    ) -> None:
        self._client = client
        self._feed_length = change_feed_max_length
        self._tombstone_ttl = tombstone_ttl_seconds
        self._layout = layout
        self._script = client.register_script(_WRITE_DOCS)

    async def write(self, docs: Sequence[StatusDoc]) -> None:
        """Each document replaces the stored one only if its revision is higher.

        The project pointers go after the documents, as commands of their own (a pointer is in
        its project's slot, the document in its shard's). Safe: a pointer is only ever set to a
        sandbox whose document is already written, so a reader following it finds the document;
        a crash between the two leaves the document written and its pointer not yet moved, and
        the retried batch (Kafka redelivers it: offsets are committed after the writes) finds
        the document at the same revision and sets the pointer then. Two sandboxes of one
        project race for its pointer exactly as they did in one script: the later write wins.
        """
        calls = script_calls(self._layout, docs, self._tombstone_ttl, self._feed_length)
        answers = await redis_pool.run_script(self._client, self._script, calls)
        pointers = [answer[i : i + 2] for answer in answers for i in range(0, len(answer), 2)]
        if not pointers:
            return
        async with self._client.pipeline(transaction=False) as pipe:
            for project, sandbox in pointers:
                pipe.set(keys.project_sandbox(text(project)), sandbox)
            await pipe.execute()

    async def ping(self) -> None:
        """Raises unless Redis takes a write (a PING alone passes on a full or read-only one)."""
        await self._client.set(keys.WRITE_PROBE, b"1", px=_PROBE_TTL_MS)
