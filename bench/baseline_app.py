"""The baseline for status-api: a bare Litestar handler doing one Redis read, nothing else.

Run under the same server settings as status-api, in the same benchmark run, so the ratio of the
two says what auth, validation and serialisation cost on top of the unavoidable work.
"""

from __future__ import annotations

import os

import redis.asyncio as aioredis
from litestar import Litestar, Response, get

from sandbox_common.readmodel import Layout, keys
from sandbox_common.serving import serve

# The services' default READ_MODEL_SHARDS.
LAYOUT = Layout()


def build() -> Litestar:
    client = aioredis.Redis.from_url(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))

    @get("/bare/{sandbox_id:str}")
    async def bare(sandbox_id: str) -> Response[bytes]:
        raw = await client.hget(LAYOUT.doc(sandbox_id), keys.DOC_FIELD)
        return Response(raw if isinstance(raw, bytes) else b"{}", media_type="application/json")

    return Litestar([bare], logging_config=None)


if __name__ == "__main__":
    # The same server, worker count and loop as status-api (sandbox_common.serving).
    serve(
        "bench.baseline_app:build",
        service="baseline",
        address=("127.0.0.1", int(os.environ.get("BASELINE_PORT", "8091"))),
        log_level="WARNING",
    )
