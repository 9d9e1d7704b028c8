"""`sandbox-enforcer`: the ticker process (with the reconciler) under uvicorn."""

from __future__ import annotations

import uvicorn

from enforcer.settings import TickerSettings
from enforcer.ticker.app import build_app
from sandbox_common import logging as jsonlog
from sandbox_common.settings import load_or_exit


def main() -> None:
    settings = load_or_exit(TickerSettings, "enforcer")
    jsonlog.configure("enforcer", settings.log_level)
    uvicorn.run(
        build_app(settings),
        host=settings.enforcer_host,
        port=settings.enforcer_port,
        log_config=None,
        lifespan="on",
    )
