"""Gathers the live read models for `replay --verify` and hands them to the pure comparisons."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

from projector.adapters.redis import TRANSITIONAL_STATES, to_doc
from projector.domain import SandboxState
from projector.handlers import Projected
from projector.replay import verify
from projector.replay.fold import Rebuild
from projector.replay.redis_shadow import live_doc_ids, pointers
from sandbox_common import keys
from sandbox_common.readmodel import Status, StatusDoc, decode_doc

_CHUNK = 5000


def postgres(
    rebuild: Rebuild, live_states: Mapping[str, SandboxState], live_history: set[str]
) -> list[str]:
    return verify.compare_states(rebuild.states, live_states) + verify.compare_history(
        rebuild.seen, live_history
    )


async def redis(
    client: aioredis.Redis, states: Iterable[SandboxState], default_idle_seconds: int
) -> list[str]:
    now = datetime.now(UTC)
    rebuilt = list(states)
    expected: dict[str, StatusDoc] = {}
    for st in rebuilt:
        doc = to_doc(st, 0, now, default_idle_seconds)
        if doc is not None:
            expected[st.sandbox_id] = doc
    live = await _docs(client, sorted(expected.keys() | await live_doc_ids(client)))
    out = verify.compare_docs(expected, live)
    idle = {
        sid: d.idle_deadline_at.timestamp()
        for sid, d in expected.items()
        if d.idle_deadline_at is not None
    }
    out += verify.compare_scores("idle-deadlines", idle, await _scores(client, keys.IDLE_DEADLINES))
    transitional = {
        sid: d.status_changed_at.timestamp()
        for sid, d in expected.items()
        if d.status in TRANSITIONAL_STATES and d.status_changed_at is not None
    }
    out += verify.compare_scores(
        "transitional", transitional, await _scores(client, keys.TRANSITIONAL)
    )
    served = pointers(Projected(st, 0) for st in rebuilt)
    projects = sorted(
        served.keys() | {d.project_id for d in live.values() if d.project_id is not None}
    )
    out += verify.compare_served(served, await _served(client, projects, live))
    return out


async def _docs(client: aioredis.Redis, ids: list[str]) -> dict[str, StatusDoc]:
    found: dict[str, StatusDoc] = {}
    for start in range(0, len(ids), _CHUNK):
        chunk = ids[start : start + _CHUNK]
        async with client.pipeline(transaction=False) as pipe:
            for sid in chunk:
                pipe.hget(keys.sandbox_doc(sid), keys.DOC_FIELD)
            raw = await pipe.execute()
        found.update({sid: decode_doc(r) for sid, r in zip(chunk, raw, strict=True) if r})
    return found


async def _scores(client: aioredis.Redis, key: str) -> dict[str, float]:
    found: dict[str, float] = {}
    pairs: list[Any] = await client.zrange(key, 0, -1, withscores=True)
    for member, score in pairs:
        found[member.decode() if isinstance(member, bytes) else str(member)] = float(score)
    return found


async def _served(
    client: aioredis.Redis, projects: list[str], live: Mapping[str, StatusDoc]
) -> dict[str, str | None]:
    served: dict[str, str | None] = {}
    for start in range(0, len(projects), _CHUNK):
        chunk = projects[start : start + _CHUNK]
        raw = await client.mget([keys.project_sandbox(p) for p in chunk])
        for project, value in zip(chunk, raw, strict=True):
            sid = value.decode() if isinstance(value, bytes) else value
            doc = live.get(sid) if sid else None
            served[project] = sid if doc is not None and doc.status is not Status.KILLED else None
    return served
