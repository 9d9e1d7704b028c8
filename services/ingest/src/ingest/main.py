"""`sandbox-ingest`: serve the webhook receiver."""

from __future__ import annotations

import uvicorn

from ingest.app import build_app
from sandbox_common import logging as jsonlog
from sandbox_common.settings import Settings


def main() -> None:
    settings = Settings.from_env()
    jsonlog.configure("ingest", settings.log_level)
    uvicorn.run(
        build_app(settings),
        host=settings.ingest_host,
        port=settings.ingest_port,
        log_config=None,
        loop="uvloop",
        http="httptools",
    )
