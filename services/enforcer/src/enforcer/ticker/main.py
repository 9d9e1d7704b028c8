"""`sandbox-enforcer`: the ticker process (with the reconciler) under uvicorn."""

from __future__ import annotations

from enforcer.settings import TickerSettings
from enforcer.ticker.app import build_app
from sandbox_common import serving


def main() -> None:
    serving.run_app(TickerSettings, "enforcer", build_app)
