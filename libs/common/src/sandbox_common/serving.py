"""How every process starts, one way: its settings are loaded strictly (a bad one ends the
start with one line), logging is configured, the app is built, and uvicorn runs it.

The HTTP services (ingest, status-api) run an app factory under uvicorn with uvloop and
httptools (`serve`, `worker_app`); the consumers (projector, ticker, actuator) run their
FastStream app (`run_app`).

uvicorn rather than granian, measured side by side on this 2-core machine (bench/servers.py):
at the fixed rates the services see (1,000-3,000 requests/s), granian's hand-off between its
Rust threads and the Python event loop cost 130-190 us of CPU per request for an empty app,
uvicorn's 60-70 us; at saturation both fall to 20-30 us, uvicorn still the cheaper.
The app is built by a factory when the server starts, so nothing is opened at import time.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import uvicorn

from sandbox_common import logging as jsonlog
from sandbox_common.http_protocol import bounded_protocol
from sandbox_common.settings import BaseSettings, HttpServerSettings, LogSettings, load_or_exit

S = TypeVar("S", bound=LogSettings)
A = TypeVar("A")


def worker_app(settings_type: type[S], service: str, build: Callable[[S], A]) -> A:
    """The body of an app factory, run inside the server's worker process: settings and
    logging are built there, then the app; what exists by then lives as long as the process."""
    settings = load_or_exit(settings_type, service)
    jsonlog.configure(service, settings.log_level)
    app = build(settings)
    settle_heap()
    return app


@dataclass(frozen=True)
class HttpLimits:
    """What the server is told about its clients (HttpServerSettings)."""

    # X-Forwarded-For is believed from these peers only; empty: never (the peer is the client).
    trusted_proxies: str = ""
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_header_bytes: int = 64 * 1024
    keep_alive: int = 5
    max_concurrency: int = 4096

    @classmethod
    def of(cls, settings: BaseSettings) -> HttpLimits:
        if not isinstance(settings, HttpServerSettings):
            return cls()
        s = settings
        return cls(
            trusted_proxies=s.http_trusted_proxies,
            header_timeout=s.http_header_timeout_seconds,
            body_timeout=s.http_body_timeout_seconds,
            max_header_bytes=s.http_max_header_bytes,
            keep_alive=s.http_keep_alive_seconds,
            max_concurrency=s.http_max_concurrency,
        )

    def uvicorn_options(self) -> dict[str, Any]:
        proxies = [p.strip() for p in self.trusted_proxies.split(",") if p.strip()]
        return {
            # Otherwise no proxy headers: nothing rewrites the client address from a header a
            # client can write itself.
            "proxy_headers": bool(proxies),
            "forwarded_allow_ips": proxies or None,
            "http": bounded_protocol(self.header_timeout, self.body_timeout, self.max_header_bytes),
            "timeout_keep_alive": self.keep_alive,
            "limit_concurrency": self.max_concurrency,
        }


def serve_factory(settings_type: type[S], service: str, factory: str) -> None:
    """An HTTP service's main(): `factory` ("module:function") builds the app in the worker."""
    settings = load_or_exit(settings_type, service)
    serve(
        factory,
        service=service,
        address=listen_address(settings),
        log_level=settings.log_level,
        limits=HttpLimits.of(settings),
    )


def run_app(
    settings_type: type[S], service: str, build: Callable[[S], Any], *, settle: bool = False
) -> None:
    """A consumer's main(): its FastStream app under uvicorn. `settle`: see settle_heap."""
    settings = load_or_exit(settings_type, service)
    jsonlog.configure(service, settings.log_level)
    app = build(settings)
    if settle:
        settle_heap()
    host, port = listen_address(settings)
    uvicorn.run(app, host=host, port=port, log_config=None, lifespan="on")


def listen_address(settings: BaseSettings) -> tuple[str, int]:
    """Where a process listens: the settings its class names in LISTEN_ON."""
    host, port = settings.LISTEN_ON
    return str(getattr(settings, host)), int(getattr(settings, port))


def serve(
    factory: str,
    *,
    service: str,
    address: tuple[str, int],
    log_level: str,
    limits: HttpLimits | None = None,
) -> None:
    """`factory` is "module:function" returning the ASGI app; blocks until stopped."""
    host, port = address
    uvicorn.run(
        factory,
        factory=True,
        host=host,
        port=port,
        loop="uvloop",
        ws="none",
        lifespan="on",
        # On SIGTERM, requests in flight get this long; an open event stream would otherwise hold
        # the process until its client leaves.
        timeout_graceful_shutdown=10,
        workers=1,
        access_log=False,
        **(limits or HttpLimits()).uvicorn_options(),
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
