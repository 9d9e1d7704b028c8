"""Bearer JWT (HS256) with project claims: `projects: [ids]` or `admin: true`."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

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

    def may_read(self, project_id: str | None) -> bool:
        return self.admin or (project_id is not None and project_id in self.projects)


class TokenVerifier:
    """Verifies bearer tokens; a verified token is remembered until it expires.

    Frontends poll with the same token again and again: checking its HMAC once instead of on
    every request is a large share of a status read. Only tokens that verified are cached, and
    the cached expiry is checked on every hit.
    """

    def __init__(self, secret: str, cache_size: int = 10_000) -> None:
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"the token secret is shorter than {MIN_SECRET_BYTES} bytes")
        self._secret = secret
        self._cache: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._cache_size = cache_size

    def principal(self, authorization: str | None) -> Principal:
        if not authorization:
            raise AuthError("missing Authorization: Bearer <token>")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise AuthError("Authorization must be 'Bearer <token>'")
        token = token.strip()
        cached = self._cache.get(token)
        if cached is not None:
            if cached[1] > time.time():
                return cached[0]
            del self._cache[token]
        principal, expires_at = self._verify(token)
        self._cache[token] = (principal, expires_at)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return principal

    def _verify(self, token: str) -> tuple[Principal, float]:
        try:
            # algorithms is pinned: a token claiming alg=none or RS256 is refused.
            claims = _JWT.decode(
                token, self._secret, algorithms=[ALGORITHM], options={"require": ["exp"]}
            )
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from exc
        projects = claims.get("projects") or []
        if not isinstance(projects, list) or not all(isinstance(p, str) for p in projects):
            raise AuthError("claim 'projects' must be a list of project ids")
        principal = Principal(
            subject=claims.get("sub"),
            projects=frozenset(projects),
            admin=claims.get("admin") is True,
        )
        return principal, float(claims["exp"])


@dataclass(frozen=True)
class Claims:
    """What a minted token says: whose it is, what it may read, and for how long from `now`."""

    projects: list[str]
    admin: bool
    ttl_seconds: int
    now: int
    subject: str = "dev"


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
    return _JWT.encode(payload, secret, algorithm=ALGORITHM)
