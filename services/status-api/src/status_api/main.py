"""`sandbox-status-api`: serve sandbox state to frontends."""

from __future__ import annotations

from sandbox_common import logging as jsonlog
from sandbox_common.serving import serve, settle_heap
from sandbox_common.settings import load_or_exit
from status_api.app import build_server_app
from status_api.fast_lane import FastLane
from status_api.settings import StatusApiSettings


def create_app() -> FastLane:
    """Factory run inside the server's worker process: settings and logging are built there."""
    settings = load_or_exit(StatusApiSettings, "status-api")
    jsonlog.configure("status-api", settings.log_level)
    app = build_server_app(settings)
    settle_heap()
    return app


def main() -> None:
    settings = load_or_exit(StatusApiSettings, "status-api")
    serve(
        "status_api.main:create_app",
        service="status-api",
        host=settings.status_api_host,
        port=settings.status_api_port,
        log_level=settings.log_level,
    )
