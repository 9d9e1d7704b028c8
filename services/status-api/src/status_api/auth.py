"""Bearer JWT (HS256) with project claims: `projects: [ids]` or `admin: true`."""

from __future__ import annotations

from dataclasses import dataclass

import jwt

ALGORITHM = "HS256"


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
    def __init__(self, secret: str) -> None:
        self._secret = secret

    def principal(self, authorization: str | None) -> Principal:
        if not authorization:
            raise AuthError("missing Authorization: Bearer <token>")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise AuthError("Authorization must be 'Bearer <token>'")
        try:
            # algorithms is pinned: a token claiming alg=none or RS256 is refused.
            claims = jwt.decode(
                token.strip(), self._secret, algorithms=[ALGORITHM], options={"require": ["exp"]}
            )
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from exc
        projects = claims.get("projects") or []
        if not isinstance(projects, list) or not all(isinstance(p, str) for p in projects):
            raise AuthError("claim 'projects' must be a list of project ids")
        return Principal(
            subject=claims.get("sub"),
            projects=frozenset(projects),
            admin=claims.get("admin") is True,
        )


def mint(
    secret: str,
    *,
    projects: list[str],
    admin: bool,
    ttl_seconds: int,
    now: int,
    subject: str = "dev",
) -> str:
    """Dev tokens (`sandboxctl token`); production tokens come from the app's identity provider."""
    claims: dict[str, object] = {
        "sub": subject,
        "projects": projects,
        "iat": now,
        "exp": now + ttl_seconds,
    }
    if admin:
        claims["admin"] = True
    return jwt.encode(claims, secret, algorithm=ALGORITHM)
