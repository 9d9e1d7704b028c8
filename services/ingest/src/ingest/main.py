"""`sandbox-ingest`: serve the webhook receiver."""

from __future__ import annotations

from ingest.app import build_server_app
from ingest.fast_lane import WebhookLane
from ingest.settings import IngestSettings
from sandbox_common import logging as jsonlog
from sandbox_common.serving import serve, settle_heap
from sandbox_common.settings import load_or_exit


def create_app() -> WebhookLane:
    """Factory run inside the server's worker process: settings and logging are built there."""
    settings = load_or_exit(IngestSettings, "ingest")
    jsonlog.configure("ingest", settings.log_level)
    app = build_server_app(settings)
    settle_heap()
    return app


def main() -> None:
    settings = load_or_exit(IngestSettings, "ingest")
    serve(
        "ingest.main:create_app",
        service="ingest",
        host=settings.ingest_host,
        port=settings.ingest_port,
        log_level=settings.log_level,
    )
