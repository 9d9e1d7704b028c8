"""`sandbox-ingest`: serve the webhook receiver."""

from __future__ import annotations

from ingest.app import build_server_app
from ingest.settings import IngestSettings
from sandbox_common import serving
from sandbox_common.request_timing import RequestTimer


def create_app() -> RequestTimer:
    """Factory run inside the server's worker process."""
    return serving.worker_app(IngestSettings, "ingest", build_server_app)


def main() -> None:
    serving.serve_factory(IngestSettings, "ingest", "ingest.main:create_app")
