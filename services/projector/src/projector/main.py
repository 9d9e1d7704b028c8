"""`sandbox-projector`: run the projector (Kafka -> PostgreSQL + Redis) under uvicorn."""

from __future__ import annotations

from projector.app import build_app
from projector.settings import ProjectorSettings
from sandbox_common import serving


def main() -> None:
    # A batch allocates ~10 short-lived objects per fact while the state cache holds millions of
    # long-lived ones: at the default thresholds the collector rescans that cache so often that
    # it costs a fifth of the projector's CPU. The fold makes no reference cycles.
    serving.run_app(ProjectorSettings, "projector", build_app, settle=True)
