"""Who may call: bearer token (or `access_token` on streams), rate limit, project and admin
checks. Every route goes through here, so the 401/403/429 answers are the same everywhere."""

from __future__ import annotations

import hashlib
import math
from typing import Any

import msgspec
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.datastructures import State
from litestar.exceptions import (
    NotAuthorizedException,
    PermissionDeniedException,
    TooManyRequestsException,
)
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard

from sandbox_common.api_keys import HEADER as API_KEY_HEADER
from sandbox_common.rate_limit import RateLimiter
from status_api import metrics
from status_api.api_key_auth import ApiKeyVerifier
from status_api.auth import AuthError, Principal, TokenVerifier

# Routes marked with this opt are authenticated before their body is read (authenticate_first).
AUTHENTICATE_FIRST = "authenticate_first"
_PRINCIPAL = "principal"


class StreamPass(msgspec.Struct, frozen=True):
    """Who opens a stream, from a bearer token or a stream ticket minted from one."""

    principal: Principal
    # Whose streams this one counts against (a digest of the token: the token itself is
    # never stored, and a ticket counts against the token it was minted from).
    holder: str
    expires_at: float  # epoch seconds: the token's expiry, when the stream ends


class Gate:
    """`limiter`: requests per verified token; `failures`: refused authentications per client
    address, checked before a token is verified, so a flood of bad tokens costs a dict lookup
    each, not an HMAC and a log line."""

    def __init__(
        self,
        verifier: TokenVerifier,
        limiter: RateLimiter,
        failures: RateLimiter,
        keys: ApiKeyVerifier | None = None,
    ) -> None:
        self._verifier = verifier
        self._limiter = limiter
        self._failures = failures
        self._keys = keys

    async def admit_api_key(self, request: Request[Any, Any, State]) -> None:
        """A request with `X-API-Key`: its project's principal, kept for the route's own check
        (`principal`). 401 for a bad key, throttled per address like a bad token."""
        key = request.headers.get(API_KEY_HEADER)
        if key is None or isinstance(request.state.get(_PRINCIPAL), Principal):
            return
        if request.headers.get("authorization") is not None:
            metrics.REFUSED.labels(reason="unauthenticated").inc()
            raise NotAuthorizedException(detail=f"send Authorization or {API_KEY_HEADER}, not both")
        address = request.client.host if request.client else ""
        wait = self._failures.wait(address)
        if wait > 0:
            metrics.REFUSED.labels(reason="unauthenticated_throttled").inc()
            raise _too_many("too many failed authentications from this address", wait)
        try:
            if self._keys is None:
                raise AuthError("API keys are not accepted here")
            principal = await self._keys.principal(key)
        except AuthError as exc:
            self._failures.retry_after(address)
            metrics.REFUSED.labels(reason="unauthenticated").inc()
            raise NotAuthorizedException(detail=str(exc)) from exc
        wait = self._limiter.retry_after(principal.token_id) if self._limiter.enabled else 0
        if wait > 0:
            metrics.REFUSED.labels(reason="rate_limited").inc()
            raise _too_many("too many requests for this API key; slow down", wait)
        request.state[_PRINCIPAL] = principal

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
        known = request.state.get(_PRINCIPAL)
        if isinstance(known, Principal):
            return known  # checked (and counted) by the authenticate_first guard
        address = request.client.host if request.client else ""
        principal = self.check(authorization, address)
        if in_query and principal.admin:
            # URLs end up in proxy and access logs: an admin token there is a fleet-wide leak.
            metrics.REFUSED.labels(reason="admin_in_query").inc()
            raise NotAuthorizedException(detail=_ADMIN_IN_QUERY)
        request.state[_PRINCIPAL] = principal
        return principal

    def check(self, authorization: str | None, address: str) -> Principal:
        principal = self._verifier.cached(authorization)
        if principal is None:
            principal = self._authenticate(authorization, address)
        wait = self._limiter.retry_after(principal.token_id) if self._limiter.enabled else 0
        if wait > 0:
            metrics.REFUSED.labels(reason="rate_limited").inc()
            raise _too_many("too many requests for this token; slow down", wait)
        return principal

    def _authenticate(self, authorization: str | None, address: str) -> Principal:
        wait = self._failures.wait(address)
        if wait > 0:
            metrics.REFUSED.labels(reason="unauthenticated_throttled").inc()
            raise _too_many("too many failed authentications from this address", wait)
        try:
            return self._verifier.principal(authorization)
        except AuthError as exc:
            self._failures.retry_after(address)
            metrics.REFUSED.labels(reason="unauthenticated").inc()
            raise NotAuthorizedException(detail=str(exc)) from exc

    def known_principal(self, authorization: str | None) -> Principal | None:
        """The principal of a token verified before, within its rate, else None (nothing
        raised, no HMAC computed: the caller hands the request to `principal`, which verifies
        a new token or says what is wrong)."""
        principal = self._verifier.cached(authorization)
        if principal is None:
            return None
        # A request the caller then declines counts again in `principal`: errors spend twice.
        if self._limiter.enabled and self._limiter.retry_after(principal.token_id) > 0:
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
        if principal.api_key:
            # A key does not expire, and a stream lives until its credential does.
            metrics.REFUSED.labels(reason="unauthenticated").inc()
            raise NotAuthorizedException(detail=_KEY_STREAM)
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


_KEY_STREAM = (
    f"streams take a bearer token (or a ticket from POST /api/stream-tickets), not {API_KEY_HEADER}"
)
_ADMIN_IN_QUERY = (
    "admin tokens are not accepted in a query string: send the Authorization header, or "
    "use a ticket from POST /api/stream-tickets"
)


def holder(authorization: str) -> str:
    """A stable name for a token that is not the token."""
    token = authorization.partition(" ")[2].strip()
    return hashlib.blake2b(token.encode(), digest_size=16).hexdigest()


def _too_many(detail: str, wait: float) -> TooManyRequestsException:
    return TooManyRequestsException(
        detail=detail, headers={"Retry-After": str(max(1, math.ceil(wait)))}
    )


def authenticate_first(gate: Gate) -> Guard:
    """An app-level guard: a project API key is checked for every route (its row may need a
    query, which the routes' own synchronous checks cannot make); for routes with opt
    AUTHENTICATE_FIRST, the token is checked before Litestar reads and parses the body (guards
    run first), so a request without a valid token is answered 401 without its body being
    read. The route's own check reuses the principal."""

    async def guard(
        connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
    ) -> None:
        if not isinstance(connection, Request):
            return
        await gate.admit_api_key(connection)
        if handler.opt.get(AUTHENTICATE_FIRST):
            gate.principal(connection)

    return guard
