"""What one sandbox, one webhook and one fact cost in the stores, for docs/CAPACITY.md.

Redis: documents written by the projector's own writer (sandbox_common.readmodel.writer) into a
redis-server of its own (a unix socket in a temporary folder, no persistence), so nothing else's
keys are counted and the live read model is never touched: the growth of `used_memory` per
RUNNING sandbox (document, project pointer, idle-deadline and hard-end index entries), per
change-feed entry, and per ingest dedupe marker (`SET sbx:seen:<id> 1 EX 3600`).
PostgreSQL: read-only, the size on disk (heap, indexes, TOAST) per row of `sandboxes` and of
the history, from the database the stack uses.

    source .state/env.sh && uv run python -m bench.footprint     (prints the figures as JSON)
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from sandbox_common.readmodel import keys
from sandbox_common.readmodel.document import Status, StatusDoc
from sandbox_common.readmodel.writer import DocumentWriter

SANDBOXES = 20_000


def _doc(i: int, revision: int, now: datetime) -> StatusDoc:
    """A RUNNING sandbox shaped like E2B's: ids of E2B's length, a project in its metadata."""
    project = f"project-{uuid.UUID(int=i)}"
    return StatusDoc(
        sandbox_id=f"i{i:019d}",
        project_id=project,
        status=Status.RUNNING,
        last_active_at=now,
        status_changed_at=now,
        timeout_at=now + timedelta(minutes=15),
        team_id=str(uuid.UUID(int=7)),
        template_id="rki5dems9wqfm4r03t7g",
        metadata={"projectId": project},
        idle_deadline_at=now + timedelta(minutes=3),
        max_lifetime_at=now + timedelta(hours=24),
        revision=revision,
        updated_at=now,
    )


async def _used(client: aioredis.Redis) -> int:
    return int((await client.info("memory"))["used_memory"])


async def _redis_costs(client: aioredis.Redis, count: int) -> dict[str, float]:
    now = datetime.now(UTC)
    base = await _used(client)
    # Feed capped at one entry: the documents and their index entries alone.
    await DocumentWriter(client, 3600, 1).write([_doc(i, 1, now) for i in range(count)])
    with_docs = await _used(client)
    # The same documents again (same sizes), this time each leaving a change-feed entry.
    await DocumentWriter(client, 3600, count).write([_doc(i, 2, now) for i in range(count)])
    with_feed = await _used(client)
    async with client.pipeline(transaction=False) as pipe:
        for _ in range(count):
            pipe.set(keys.seen_event(str(uuid.uuid4())), b"1", ex=3600)
        await pipe.execute()
    with_markers = await _used(client)
    return {
        "redis_bytes_per_sandbox": (with_docs - base) / count,
        "redis_bytes_per_feed_entry": (with_feed - with_docs) / count,
        "redis_bytes_per_dedupe_marker": (with_markers - with_feed) / count,
    }


async def redis_costs(count: int = SANDBOXES) -> dict[str, float]:
    server = shutil.which("redis-server")
    if server is None:
        raise RuntimeError("redis-server is not installed (make up installs it)")
    with tempfile.TemporaryDirectory() as folder:
        sock = Path(folder) / "redis.sock"
        process = await asyncio.create_subprocess_exec(
            *(server, "--port", "0", "--unixsocket", str(sock), "--save", "", "--appendonly", "no"),
            stdout=subprocess.DEVNULL,
        )
        client = aioredis.Redis(unix_socket_path=str(sock))
        try:
            for _ in range(100):
                if sock.exists():
                    break
                await asyncio.sleep(0.05)
            return await _redis_costs(client, count)
        finally:
            await client.aclose()
            process.terminate()
            await asyncio.wait_for(process.wait(), timeout=10)


_ROW_SIZES = """
SELECT (SELECT pg_total_relation_size('sandboxes')) AS sandboxes_bytes,
       (SELECT count(*) FROM sandboxes) AS sandboxes_rows,
       (SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_inherits i
          JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = 'sandbox_events'::regclass) AS history_bytes,
       (SELECT count(*) FROM sandbox_events) AS history_rows
"""


async def postgres_costs(database_url: str) -> dict[str, float]:
    conn = await asyncpg.connect(database_url)
    try:
        row = await conn.fetchrow(_ROW_SIZES)
    finally:
        await conn.close()
    assert row is not None
    if not row["sandboxes_rows"] or not row["history_rows"]:
        raise RuntimeError("the database holds no sandboxes or no history to measure")
    sandboxes, history = int(row["sandboxes_rows"]), int(row["history_rows"])
    return {
        "postgres_bytes_per_sandbox": int(row["sandboxes_bytes"]) / sandboxes,
        "postgres_sandboxes_measured": sandboxes,
        "postgres_bytes_per_history_row": int(row["history_bytes"]) / history,
        "postgres_history_rows_measured": history,
    }


async def measure(database_url: str) -> dict[str, Any]:
    return {
        **await redis_costs(),
        **await postgres_costs(database_url),
        "when": datetime.now(UTC).isoformat(),
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(measure(os.environ["DATABASE_URL"])), indent=2))
