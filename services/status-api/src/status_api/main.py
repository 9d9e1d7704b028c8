"""`sandbox-status-api`: serve sandbox state to frontends."""

from __future__ import annotations

from sandbox_common import serving
from sandbox_common.request_timing import RequestTimer
from status_api.app import build_server_app
from status_api.settings import StatusApiSettings


def create_app() -> RequestTimer:
    """Factory run inside the server's worker process."""
    return serving.worker_app(StatusApiSettings, "status-api", build_server_app)


def main() -> None:
    serving.serve_factory(StatusApiSettings, "status-api", "status_api.main:create_app")
