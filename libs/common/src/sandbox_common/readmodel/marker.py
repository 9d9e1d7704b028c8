"""The read model's completeness marker, and the Redis it was written on.

A Redis that lost the whole model loses the marker with it, and the projector rebuilds from
PostgreSQL. A promoted replica is worse: it kept the marker but may lack the last writes its
primary took before the failover, and would serve those stale states for ever. So the marker
records the replication id of the Redis that wrote it (`master_replid`, which a promotion or a
restart changes and a replica shares with its primary while it follows it); a marker naming
another Redis means the model may have lost writes, and it is rebuilt like a missing one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

import msgspec
import redis.asyncio as aioredis

from sandbox_common.readmodel import keys
from sandbox_common.readmodel.redis_text import text


class Stale(Enum):
    """Why the read model must be rebuilt."""

    MISSING = "marker missing"
    OTHER_SERVER = "written on another Redis (a failover or restart may have lost writes)"


@dataclass(frozen=True)
class Written:
    """What a rebuild records in the marker."""

    by: str  # "projector", "replay", "sandboxctl"
    at: datetime
    source: str  # the topic replayed, or "postgresql"


async def server_id(client: aioredis.Redis) -> str:
    """This Redis's replication id (a replica reports its primary's)."""
    info: dict[str, Any] = await client.info("replication")
    return text(info.get("master_replid", "")) or "unknown"


async def encode(client: aioredis.Redis, written: Written) -> str:
    value = {
        "by": written.by,
        "at": written.at.isoformat(),
        "source": written.source,
        "server": await server_id(client),
    }
    return msgspec.json.encode(value).decode()


async def staleness(client: aioredis.Redis) -> Stale | None:
    """None while the marker is there and was written on this Redis. A marker from before the
    server was recorded is adopted (this Redis is taken to be the one that wrote it)."""
    raw = await client.get(keys.READ_MODEL_MARKER)
    if raw is None:
        return Stale.MISSING
    current = await server_id(client)
    try:
        recorded = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        recorded = {}
    if not isinstance(recorded, dict):
        recorded = {}
    server = recorded.get("server")
    if server is None:
        recorded["server"] = current
        # XX: never recreate a marker that a concurrent flush just removed.
        await client.set(keys.READ_MODEL_MARKER, msgspec.json.encode(recorded), xx=True)
        return None
    return None if server == current else Stale.OTHER_SERVER
