"""`sandbox-projector`: run the projector (Kafka -> PostgreSQL + Redis) under uvicorn."""

from __future__ import annotations

import uvicorn

from projector.app import build_app
from sandbox_common import logging as jsonlog
from sandbox_common.settings import Settings


def main() -> None:
    settings = Settings.from_env()
    jsonlog.configure("projector", settings.log_level)
    app = build_app(settings)
    uvicorn.run(
        app,
        host=settings.projector_host,
        port=settings.projector_port,
        log_config=None,
        lifespan="on",
    )
