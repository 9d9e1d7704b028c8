"""Who may call: bearer token (or `access_token` on streams), rate limit, project and admin
checks. Every route goes through here, so the 401/403/429 answers are the same everywhere."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec
from litestar import Request
from litestar.datastructures import State
from litestar.exceptions import (
    NotAuthorizedException,
    PermissionDeniedException,
    TooManyRequestsException,
)

from status_api import metrics
from status_api.auth import AuthError, Principal, TokenVerifier
from status_api.rate_limit import RateLimiter


class StreamPass(msgspec.Struct, frozen=True):
    """Who opens a stream, from a bearer token or a stream ticket minted from one."""

    principal: Principal
    # Whose streams this one counts against (a digest of the token: the token itself is
    # never stored, and a ticket counts against the token it was minted from).
    holder: str
    expires_at: float  # epoch seconds: the token's expiry, when the stream ends


class Gate:
    def __init__(self, verifier: TokenVerifier, limiter: RateLimiter) -> None:
        self._verifier = verifier
        self._limiter = limiter

    def principal(
        self, request: Request[Any, Any, State], *, query_token: bool = False
    ) -> Principal:
        """401 without a valid token, 429 over the token's rate. `query_token`: streams may pass
        `?access_token=` because a browser's EventSource cannot set headers."""
        authorization = request.headers.get("authorization")
        in_query = authorization is None and query_token
        if in_query:
            token = request.query_params.get("access_token")
            authorization = f"Bearer {token}" if token else None
        try:
            principal = self._verifier.principal(authorization)
        except AuthError as exc:
            metrics.REFUSED.labels(reason="unauthenticated").inc()
            raise NotAuthorizedException(detail=str(exc)) from exc
        if in_query and principal.admin:
            # URLs end up in proxy and access logs: an admin token there is a fleet-wide leak.
            metrics.REFUSED.labels(reason="admin_in_query").inc()
            raise NotAuthorizedException(detail=_ADMIN_IN_QUERY)
        if self._limiter.enabled and authorization is not None:
            wait = self._limiter.retry_after(authorization)
            if wait > 0:
                metrics.REFUSED.labels(reason="rate_limited").inc()
                raise TooManyRequestsException(
                    detail="too many requests for this token; slow down",
                    headers={"Retry-After": str(max(1, round(wait)))},
                )
        return principal

    def known_principal(self, authorization: str | None) -> Principal | None:
        """The principal of a valid token within its rate, else None (and nothing raised:
        the caller hands the request to `principal`, which says what is wrong)."""
        try:
            principal = self._verifier.principal(authorization)
        except AuthError:
            return None
        # A request the caller then declines counts again in `principal`: errors spend twice.
        limited = self._limiter.enabled and authorization is not None
        if limited and self._limiter.retry_after(authorization or "") > 0:
            return None
        return principal

    def for_project(self, request: Request[Any, Any, State], project_id: str) -> Principal:
        principal = self.principal(request)
        if not principal.may_read(project_id):
            metrics.REFUSED.labels(reason="forbidden").inc()
            raise PermissionDeniedException(detail=f"token has no access to project {project_id}")
        return principal

    def admin(self, request: Request[Any, Any, State]) -> Principal:
        principal = self.principal(request)
        if not principal.admin:
            metrics.REFUSED.labels(reason="forbidden").inc()
            raise PermissionDeniedException(detail="an admin token is needed")
        return principal

    def stream_pass(
        self, request: Request[Any, Any, State], *, query_token: bool = True
    ) -> StreamPass:
        """A stream opened with the bearer token itself: in the header, or (non-admin tokens
        only, kept for existing clients) as `?access_token=`."""
        principal = self.principal(request, query_token=query_token)
        header = request.headers.get("authorization")
        # principal() let it in: a header, else a non-empty query token.
        authorization = header or f"Bearer {request.query_params['access_token']}"
        return StreamPass(principal, holder(authorization), self._verifier.expiry(authorization))

    def let_stream(self, principal: Principal, project_id: str | None) -> None:
        """403 unless the principal may watch this project (None: the fleet, admins only)."""
        if principal.admin or (project_id is not None and principal.may_read(project_id)):
            return
        metrics.REFUSED.labels(reason="forbidden").inc()
        detail = (
            "an admin token is needed"
            if project_id is None
            else f"token has no access to project {project_id}"
        )
        raise PermissionDeniedException(detail=detail)


_ADMIN_IN_QUERY = (
    "admin tokens are not accepted in a query string: send the Authorization header, or "
    "use a ticket from POST /api/stream-tickets"
)


def holder(authorization: str) -> str:
    """A stable name for a token that is not the token."""
    token = authorization.partition(" ")[2].strip()
    return hashlib.blake2b(token.encode(), digest_size=16).hexdigest()
