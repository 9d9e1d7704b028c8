"""`e2b-sim`: run the E2B simulator (default http://127.0.0.1:8090, API key "sim-key")."""

from __future__ import annotations

import os

from litestar.types import ASGIApp

from e2b_sim.app import build_app
from e2b_sim.faults import faults_from_env
from e2b_sim.settings import SimSettings
from e2b_sim.sim import Sim
from sandbox_common import logging as jsonlog
from sandbox_common.serving import serve


def create_app() -> ASGIApp:
    """Factory run inside the server's worker process: state and loops are created there."""
    settings = SimSettings.from_env()
    jsonlog.configure("e2b-sim", settings.log_level)
    return build_app(Sim(settings, faults_from_env(os.environ)))


def main() -> None:
    settings = SimSettings.from_env()
    serve(
        "e2b_sim.main:create_app",
        service="e2b-sim",
        address=(settings.host, settings.port),
        log_level=settings.log_level,
    )


if __name__ == "__main__":
    main()
