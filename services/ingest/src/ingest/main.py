"""`sandbox-ingest`: serve the webhook receiver.

Served by granian (a Rust HTTP server): at thousands of webhooks a second, uvicorn's per-response
socket writes were a fifth of ingest's CPU, and this service shares two cores with Kafka.
"""

from __future__ import annotations

from typing import Any

from granian.constants import Interfaces, Loops
from granian.server import Server
from litestar import Litestar

from ingest.app import build_app
from sandbox_common import logging as jsonlog
from sandbox_common.settings import Settings


def create_app() -> Litestar:
    """Factory run inside the server's worker process: settings and logging are built there."""
    settings = Settings.from_env()
    jsonlog.configure("ingest", settings.log_level)
    return build_app(settings)


def main() -> None:
    settings = Settings.from_env()
    jsonlog.configure("ingest", settings.log_level)
    Server(
        "ingest.main:create_app",
        factory=True,
        address=settings.ingest_host,
        port=settings.ingest_port,
        interface=Interfaces.ASGI,
        loop=Loops.uvloop,
        workers=1,
        log_access=False,
        log_dictconfig=_granian_logging(settings.log_level),
    ).serve()


def _granian_logging(level: str) -> dict[str, Any]:
    # granian merges this over its defaults shallowly: its loggers must name our handler.
    config = jsonlog.dict_config("ingest", level)
    config["loggers"] = {
        name: {"handlers": ["stdout"], "propagate": False}
        for name in ("_granian", "granian.access")
    }
    return config
