"""Errors in E2B's shape, `{"code": int, "message": str}`, mapped in one place."""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import msgspec
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException

from e2b_sim.domain import Outcome

T = TypeVar("T")
log = logging.getLogger("e2b_sim")
# The message of a 429, over the rate limit or injected (unconfirmed: E2B's exact words).
RATE_LIMITED = "Rate limit exceeded, please try again later"


class E2BError(HTTPException):
    def __init__(
        self, status: int, message: str, *, retry_after_seconds: int | None = None
    ) -> None:
        """`retry_after_seconds`: sent as the Retry-After header (a 429's)."""
        headers = None if retry_after_seconds is None else {"Retry-After": f"{retry_after_seconds}"}
        super().__init__(status_code=status, detail=message, headers=headers)


def decode(raw: bytes, kind: type[T]) -> T:
    """A JSON body (an empty one reads as `{}`); 400 with msgspec's reason otherwise."""
    try:
        return msgspec.json.decode(raw if raw.strip() else b"{}", type=kind)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise E2BError(400, f"invalid request body: {exc}") from exc


def reply(outcome: Outcome, content: Any = None) -> Response[Any]:
    """2xx outcomes as responses (204 without a body); errors raised as E2BError."""
    if outcome.status >= 400:
        raise E2BError(outcome.status, outcome.message)
    if outcome.status == 204:
        return Response(content=b"", status_code=204)
    return Response(content=content, status_code=outcome.status)


def http_error(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    message = exc.detail
    if isinstance(exc, ValidationException) and exc.extra:
        message = f"{exc.detail}: {exc.extra}"
    return _error(exc.status_code, message, exc.headers)


def server_error(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error", exc_info=exc)
    return _error(500, "internal error", None)


def _error(status: int, message: str, headers: dict[str, str] | None) -> Response[Any]:
    body = {"code": status, "message": message}
    return Response(body, status_code=status, media_type=MediaType.JSON, headers=headers)
