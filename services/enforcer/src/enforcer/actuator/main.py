"""`sandbox-actuator`: the actuator process under uvicorn."""

from __future__ import annotations

from enforcer.actuator.app import build_app
from enforcer.settings import ActuatorSettings
from sandbox_common import serving


def main() -> None:
    serving.run_app(ActuatorSettings, "actuator", build_app)
