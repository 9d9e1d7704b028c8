"""Who may call: bearer token (or `access_token` on streams), rate limit, project and admin
checks. Every route goes through here, so the 401/403/429 answers are the same everywhere."""

from __future__ import annotations

from typing import Any

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
        if authorization is None and query_token:
            token = request.query_params.get("access_token")
            authorization = f"Bearer {token}" if token else None
        try:
            principal = self._verifier.principal(authorization)
        except AuthError as exc:
            metrics.REFUSED.labels(reason="unauthenticated").inc()
            raise NotAuthorizedException(detail=str(exc)) from exc
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

    def for_project(
        self, request: Request[Any, Any, State], project_id: str, *, query_token: bool = False
    ) -> Principal:
        principal = self.principal(request, query_token=query_token)
        if not principal.may_read(project_id):
            metrics.REFUSED.labels(reason="forbidden").inc()
            raise PermissionDeniedException(detail=f"token has no access to project {project_id}")
        return principal

    def admin(self, request: Request[Any, Any, State], *, query_token: bool = False) -> Principal:
        principal = self.principal(request, query_token=query_token)
        if not principal.admin:
            metrics.REFUSED.labels(reason="forbidden").inc()
            raise PermissionDeniedException(detail="an admin token is needed")
        return principal
