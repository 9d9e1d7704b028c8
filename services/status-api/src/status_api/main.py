"""`sandbox-status-api`: serve sandbox state to frontends."""

from __future__ import annotations

import uvicorn

from sandbox_common import logging as jsonlog
from sandbox_common.settings import Settings
from status_api.app import build_app


def main() -> None:
    settings = Settings.from_env()
    jsonlog.configure("status-api", settings.log_level)
    uvicorn.run(
        build_app(settings),
        host=settings.status_api_host,
        port=settings.status_api_port,
        log_config=None,
        loop="uvloop",
        http="httptools",
    )
