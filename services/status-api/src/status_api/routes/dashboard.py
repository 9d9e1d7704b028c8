"""The operators' dashboard: static files from this package, no CDN (nothing here reaches the
internet). The page asks for an admin token and then uses the API like any other client."""

from __future__ import annotations

from pathlib import Path

from litestar import Response
from litestar.router import Router
from litestar.static_files import create_static_files_router

STATIC = Path(__file__).resolve().parents[1] / "static"
# The page holds an admin token: its own files and this API only, nothing inline, never inside
# another site's frame (clickjacking).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


async def _secured(response: Response[object]) -> Response[object]:
    response.headers.update(SECURITY_HEADERS)
    return response


def router() -> Router:
    return create_static_files_router(
        path="/dashboard",
        directories=[STATIC],
        html_mode=True,
        include_in_schema=False,
        after_request=_secured,
    )
