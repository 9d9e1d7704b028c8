"""The read model's completeness marker, the key layout it was written in, and the Redis it was
written on.

A Redis that lost the whole model loses the marker with it, and the projector rebuilds from
PostgreSQL. A promoted replica is worse: it kept the marker but may lack the last writes its
primary took before the failover, and would serve those stale states for ever. So the marker
records the replication id of every primary that holds the model (`master_replid`, which a
promotion or a restart changes and a replica shares with its primary while it follows it: one
on a single Redis, one per master on a cluster); a marker naming another set means some node
may have lost writes, and the model is rebuilt like a missing one. A marker of another key
layout (the unsharded one before it, another READ_MODEL_SHARDS) is rebuilt too: the live keys
are not where this version reads them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

import msgspec
import redis.asyncio as aioredis

from sandbox_common import redis_pool
from sandbox_common.readmodel import keys
from sandbox_common.readmodel.redis_text import text


class Stale(Enum):
    """Why the read model must be rebuilt."""

    MISSING = "marker missing"
    LAYOUT = "written in another key layout (an upgrade, or READ_MODEL_SHARDS changed)"
    OTHER_SERVER = "written on another Redis (a failover or restart may have lost writes)"


@dataclass(frozen=True)
class Written:
    """What a rebuild records in the marker."""

    by: str  # "projector", "replay", "sandboxctl"
    at: datetime
    source: str  # the topic replayed, or "postgresql"


async def server_ids(client: aioredis.Redis) -> list[str]:
    """The replication ids of the primaries (a replica reports its primary's), sorted."""
    infos = await redis_pool.primaries_info(client, "replication")
    return sorted(text(info.get("master_replid", "")) or "unknown" for info in infos)


async def encode(client: aioredis.Redis, written: Written, layout: keys.Layout) -> str:
    value = {
        "by": written.by,
        "at": written.at.isoformat(),
        "source": written.source,
        "layout": keys.LAYOUT_VERSION,
        "shards": layout.shards,
        "servers": await server_ids(client),
    }
    return msgspec.json.encode(value).decode()


def judge(raw: bytes | str | None, layout: keys.Layout, servers: list[str]) -> Stale | None:
    """Pure: the marker as read (None: missing) against this layout and these primaries."""
    if raw is None:
        return Stale.MISSING
    try:
        recorded: Any = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        recorded = {}
    if not isinstance(recorded, dict):
        recorded = {}
    if recorded.get("layout") != keys.LAYOUT_VERSION or recorded.get("shards") != layout.shards:
        return Stale.LAYOUT
    return None if recorded.get("servers") == servers else Stale.OTHER_SERVER


async def staleness(client: aioredis.Redis, layout: keys.Layout) -> Stale | None:
    """None while the marker is there, of this layout, and written on these primaries."""
    raw = await client.get(keys.READ_MODEL_MARKER)
    if raw is None:
        return Stale.MISSING
    return judge(raw, layout, await server_ids(client))
