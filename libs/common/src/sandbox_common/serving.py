"""Runs an ASGI app factory under granian, the same way for every HTTP service.

granian (a Rust HTTP server) rather than uvicorn: at thousands of requests a second uvicorn's
per-response socket writes were a fifth of a service's CPU, on two cores shared with Kafka.
The app is built by a factory inside the worker process, so nothing is opened before the fork.
"""

from __future__ import annotations

from typing import Any

from granian.constants import Interfaces, Loops
from granian.server import Server

from sandbox_common import logging as jsonlog


def serve(factory: str, *, service: str, host: str, port: int, log_level: str) -> None:
    """`factory` is "module:function" returning the ASGI app; blocks until stopped."""
    Server(
        factory,
        factory=True,
        address=host,
        port=port,
        interface=Interfaces.ASGI,
        loop=Loops.uvloop,
        workers=1,
        log_access=False,
        log_dictconfig=_granian_logging(service, log_level),
    ).serve()


def _granian_logging(service: str, level: str) -> dict[str, Any]:
    # granian merges this over its defaults shallowly: its loggers must name our handler.
    config = jsonlog.dict_config(service, level)
    config["loggers"] = {
        name: {"handlers": ["stdout"], "propagate": False}
        for name in ("_granian", "granian.access")
    }
    return config
