"""`sandbox-actuator`: the actuator process under uvicorn."""

from __future__ import annotations

import uvicorn

from enforcer.actuator.app import build_app
from enforcer.settings import ActuatorSettings
from sandbox_common import logging as jsonlog
from sandbox_common.settings import load_or_exit


def main() -> None:
    settings = load_or_exit(ActuatorSettings, "actuator")
    jsonlog.configure("actuator", settings.log_level)
    uvicorn.run(
        build_app(settings),
        host=settings.actuator_host,
        port=settings.actuator_port,
        log_config=None,
        lifespan="on",
    )
