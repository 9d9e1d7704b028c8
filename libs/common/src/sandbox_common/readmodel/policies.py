"""The policies in force, in the read model: written by the projector once PostgreSQL holds them
(and by a rebuild or a replay), read by the actuator, which re-judges a pause against them just
before it calls E2B (so a deadline index that is briefly stale after a policy change can make a
pause late, never wrong)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec
import redis.asyncio as aioredis

from sandbox_common.facts import policy_owner, policy_subject
from sandbox_common.policies import Placed, Policy, PolicyBook
from sandbox_common.readmodel import keys


class Entry(msgspec.Struct, frozen=True):
    """A subject's policy and the position (partition, offset) of the fact that set it."""

    partition: int
    offset: int
    policy: Policy


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Entry)

# A later fact of the subject replaces the stored one; an earlier one (a redelivered batch, a
# rebalance's stale writer) does not. A subject's facts share one partition, so a position on
# another partition means the topic was recreated: the newer write wins, as in PostgreSQL.
# KEYS: the hash. ARGV: subject, partition, offset, entry JSON, in fours.
_SET_LATER = """
for i = 1, #ARGV, 4 do
  local current = redis.call('HGET', KEYS[1], ARGV[i])
  local later = true
  if current then
    local stored = cjson.decode(current)
    later = stored['partition'] ~= tonumber(ARGV[i + 1])
      or stored['offset'] < tonumber(ARGV[i + 2])
  end
  if later then
    redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 3])
  end
end
return 0
"""


# KEYS: the hash. ARGV: subject, entry JSON, in pairs.
_REPLACE = """
redis.call('DEL', KEYS[1])
for i = 1, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
return 0
"""


class PolicyWriter:
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self._script = client.register_script(_SET_LATER)
        self._replace = client.register_script(_REPLACE)

    async def write(self, placed: Sequence[Placed]) -> None:
        if not placed:
            return
        args: list[str | int | bytes] = []
        for p in placed:
            entry = _encoder.encode(Entry(p.partition, p.offset, p.policy))
            args += [policy_subject(p.project_id), p.partition, p.offset, entry]
        await self._script(keys=[keys.POLICIES], args=args)

    async def replace_all(self, placed: Iterable[Placed]) -> None:
        """The whole set at once (a rebuild from PostgreSQL, a replay's swap): one script, so a
        reader never sees it empty half-way (and it runs on a Redis Cluster: one key)."""
        args: list[str | bytes] = []
        for p in placed:
            entry = _encoder.encode(Entry(p.partition, p.offset, p.policy))
            args += [policy_subject(p.project_id), entry]
        await self._replace(keys=[keys.POLICIES], args=args)


class PolicyReader:
    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client

    async def book_for(self, project_id: str | None) -> PolicyBook:
        """The default's and this project's policies (one round trip): enough to ask the book
        about this project's sandboxes."""
        subjects = [policy_subject(None)]
        if project_id is not None:
            subjects.append(policy_subject(project_id))
        found = await self._client.hmget(keys.POLICIES, subjects)
        default, project = [*found, None][:2]
        return PolicyBook.of(
            (owner, _decoder.decode(raw).policy)
            for owner, raw in ((None, default), (project_id, project))
            if raw is not None
        )

    async def whole(self) -> PolicyBook:
        """Every policy in force (one round trip): status-api's warning lead times per project."""
        found = await self._client.hgetall(keys.POLICIES)
        return PolicyBook.of(
            (policy_owner(_text(subject)), _decoder.decode(raw).policy)
            for subject, raw in found.items()
        )


def _text(value: bytes | str) -> str:
    """A hash field as redis-py types it (bytes here: the clients do not decode)."""
    return value.decode() if isinstance(value, bytes) else value
