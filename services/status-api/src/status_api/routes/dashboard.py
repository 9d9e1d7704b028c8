"""The operators' dashboard: static files from this package, no CDN (nothing here reaches the
internet). The page asks for an admin token and then uses the API like any other client."""

from __future__ import annotations

from pathlib import Path

from litestar.router import Router
from litestar.static_files import create_static_files_router

STATIC = Path(__file__).resolve().parents[1] / "static"


def router() -> Router:
    return create_static_files_router(
        path="/dashboard", directories=[STATIC], html_mode=True, include_in_schema=False
    )
