"""Runs an ASGI app factory under uvicorn (uvloop + httptools), the same way for every HTTP
service.

uvicorn rather than granian, measured side by side on this 2-core machine (bench/servers.py):
at the fixed rates the services see (1,000-3,000 requests/s), granian's hand-off between its
Rust threads and the Python event loop cost 130-190 us of CPU per request for an empty app,
uvicorn's 60-70 us; at saturation both fall to 20-30 us, uvicorn still the cheaper.
The app is built by a factory when the server starts, so nothing is opened at import time.
"""

from __future__ import annotations

import gc

import uvicorn

from sandbox_common import logging as jsonlog


def serve(factory: str, *, service: str, host: str, port: int, log_level: str) -> None:
    """`factory` is "module:function" returning the ASGI app; blocks until stopped."""
    uvicorn.run(
        factory,
        factory=True,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        ws="none",
        lifespan="on",
        # On SIGTERM, requests in flight get this long; an open event stream would otherwise hold
        # the process until its client leaves.
        timeout_graceful_shutdown=10,
        workers=1,
        access_log=False,
        # Nothing reads the client address (limits are per token): skip rewriting every scope.
        proxy_headers=False,
        server_header=False,
        log_config=jsonlog.dict_config(service, log_level),
        log_level=log_level.lower(),
    )


def settle_heap() -> None:
    """Called once the app is built: what exists by then (modules, routes, settings) lives as
    long as the process, so the collector stops rescanning it, and young collections come
    less often. A full collection of the whole start-up heap took long enough to show in the
    services' p99 latency; what a request allocates is freed by reference counting."""
    gc.freeze()
    gc.set_threshold(10_000, 50, 100)
