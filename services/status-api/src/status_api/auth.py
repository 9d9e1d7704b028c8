"""Bearer JWT (HS256) with project claims: `projects: [ids]` or `admin: true`."""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt

from sandbox_common.settings import MIN_SECRET_BYTES

ALGORITHM = "HS256"
# A key shorter than HS256's digest is an error, not PyJWT's default warning.
_JWT = jwt.PyJWT(options={"enforce_minimum_key_length": True})


class AuthError(Exception):
    """No usable token (401)."""


@dataclass(frozen=True)
class Principal:
    subject: str | None
    projects: frozenset[str]
    admin: bool
    # Which token this is, however its header was spelled (what the rate limit is keyed by).
    token_id: str = field(default="", compare=False)
    # Admitted by a project API key (X-API-Key), not a bearer token.
    api_key: bool = field(default=False, compare=False)

    def may_read(self, project_id: str | None) -> bool:
        return self.admin or (project_id is not None and project_id in self.projects)


@dataclass(frozen=True)
class TokenPolicy:
    """What a token must say besides its signature and `exp`: the issuer and audience, when
    set (STATUS_API_JWT_ISSUER / _AUDIENCE), and a lifetime (`exp - iat`) of at most
    `max_ttl_seconds` (STATUS_API_JWT_MAX_TTL_SECONDS; 0: any), so a token minted for years
    is refused even before it leaks."""

    issuer: str | None = None
    audience: str | None = None
    max_ttl_seconds: int = 0

    def required(self) -> list[str]:
        claims = ["exp"]
        if self.issuer:
            claims.append("iss")
        if self.audience:
            claims.append("aud")
        return claims

    def too_long(self, claims: Mapping[str, Any], now: float) -> bool:
        """Lives longer than allowed: `exp - iat`, or without `iat`, `exp - now` (a token
        that says nothing of its start may not end further away than the maximum)."""
        if not self.max_ttl_seconds:
            return False
        exp = float(claims["exp"])
        start = claims.get("iat")
        since = float(start) if isinstance(start, int | float) else now
        return exp - since > self.max_ttl_seconds


class TokenVerifier:
    """Verifies bearer tokens; a verified token is remembered until it expires.

    Frontends poll with the same token again and again: checking its HMAC once instead of on
    every request is a large share of a status read. Only tokens that verified are cached, and
    the cached expiry is checked on every hit.
    """

    def __init__(
        self, secret: str, policy: TokenPolicy | None = None, cache_size: int = 10_000
    ) -> None:
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"the token secret is shorter than {MIN_SECRET_BYTES} bytes")
        self._secret = secret
        self._policy = policy or TokenPolicy()
        self._cache: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._cache_size = cache_size

    def principal(self, authorization: str | None) -> Principal:
        token = _token(authorization)
        cached = self.cached(authorization)
        if cached is not None:
            return cached
        principal, expires_at = self._verify(token)
        self._cache[token] = (principal, expires_at)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return principal

    def cached(self, authorization: str | None) -> Principal | None:
        """The principal of a token verified before and not expired yet: no HMAC computed."""
        try:
            token = _token(authorization)
        except AuthError:
            return None
        cached = self._cache.get(token)
        if cached is None:
            return None
        if cached[1] > time.time():
            return cached[0]
        del self._cache[token]
        return None

    def expiry(self, authorization: str) -> float:
        """When the token of an Authorization that `principal` accepted expires (epoch s):
        streams opened with it end then."""
        token = authorization.partition(" ")[2].strip()
        cached = self._cache.get(token)
        return cached[1] if cached is not None else self._verify(token)[1]

    def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            # algorithms is pinned: a token claiming alg=none or RS256 is refused.
            claims = _JWT.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                options={"require": self._policy.required()},
                issuer=self._policy.issuer or None,
                audience=self._policy.audience or None,
            )
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from exc
        if self._policy.too_long(claims, time.time()):
            longest = self._policy.max_ttl_seconds
            raise AuthError(f"invalid token: lives longer than {longest} s (exp - iat)")
        projects = claims.get("projects") or []
        if not isinstance(projects, list) or not all(isinstance(p, str) for p in projects):
            raise AuthError("claim 'projects' must be a list of project ids")
        principal = Principal(
            subject=claims.get("sub"),
            projects=frozenset(projects),
            admin=claims.get("admin") is True,
            token_id=_token_id(token),
        )
        return principal, float(claims["exp"])


def _token(authorization: str | None) -> str:
    """The token of `Bearer <token>`: the scheme in any case, whitespace around the token
    ignored (RFC 9110 allows more than one space; each spelling is the same token)."""
    if not authorization:
        raise AuthError("missing Authorization: Bearer <token>")
    parts = authorization.split(maxsplit=1)
    if len(parts) != 2 or parts[0].lower() != "bearer":
        raise AuthError("Authorization must be 'Bearer <token>'")
    return parts[1].strip()


def _token_id(token: str) -> str:
    """A verified token's identity: a digest of the token as `_token` reads it (the header's
    spelling aside). PyJWT refuses a signature in non-canonical base64, so one token has one
    text; the digest keeps the limiter's keys small."""
    return hashlib.blake2b(token.encode(), digest_size=16).hexdigest()


@dataclass(frozen=True)
class Claims:
    """What a minted token says: whose it is, what it may read, and for how long from `now`."""

    projects: list[str]
    admin: bool
    ttl_seconds: int
    now: int
    subject: str = "dev"
    issuer: str | None = None
    audience: str | None = None


def mint(secret: str, claims: Claims) -> str:
    """Dev tokens (`sandboxctl token`); production tokens come from the app's identity provider."""
    payload: dict[str, object] = {
        "sub": claims.subject,
        "projects": claims.projects,
        "iat": claims.now,
        "exp": claims.now + claims.ttl_seconds,
    }
    if claims.admin:
        payload["admin"] = True
    if claims.issuer:
        payload["iss"] = claims.issuer
    if claims.audience:
        payload["aud"] = claims.audience
    return _JWT.encode(payload, secret, algorithm=ALGORITHM)
