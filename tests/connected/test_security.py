"""Security of the running status-api and ingest: forged, tampered and expired tokens are 401 on
every route (the fast lane included), claims cannot be bent into admin, and no secret or token
ever reaches the services' logs.

The tokens unit tests cover (tests/unit/test_auth_and_settings.py) are sent here to the real
routes; cross-project refusal per route is tests/connected/test_route_access.py."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable

import httpx
import jwt
import pytest

from sandbox_common import e2b
from status_api.auth import Claims, mint
from tests.connected.conftest import Stack
from tests.connected.helpers import live_sandbox, post_webhook, unique, webhook
from tests.connected.test_route_access import ROUTES

pytestmark = pytest.mark.connected

SENT_TOKENS: list[str] = []
NONE_UPPER = (
    base64.urlsafe_b64encode(b'{"alg":"NONE","typ":"JWT"}').decode().rstrip("=")
)  # every token this module used: none may be in a log


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _claims(project: str, **extra: object) -> dict[str, object]:
    now = int(time.time())
    return {"sub": unique("attacker"), "projects": [project], "iat": now, "exp": now + 600, **extra}


def _flip(text: str, at: int) -> str:
    return text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1 :]


def forgeries(secret: str, project: str) -> dict[str, str]:
    """Tokens that must all be refused (401), each aimed at the victim's project."""
    good = jwt.encode(_claims(project), secret, algorithm="HS256")
    header, payload, signature = good.split(".")
    admin_payload = _b64(json.dumps(_claims(project, admin=True)).encode())
    return {
        "payload flipped to admin": f"{header}.{admin_payload}.{signature}",
        "payload byte flipped": f"{header}.{_flip(payload, 10)}.{signature}",
        "signature flipped": f"{header}.{payload}.{_flip(signature, 5)}",
        "signature truncated": f"{header}.{payload}.{signature[:-4]}",
        "signature removed": f"{header}.{payload}.",
        "alg none": jwt.encode(_claims(project, admin=True), None, algorithm="none"),
        "alg none, upper-case": f"{NONE_UPPER}.{admin_payload}.",
        "HS512 with the right secret": jwt.encode(_claims(project), secret, algorithm="HS512"),
        "RS256 header, HMAC signature": _hs256_as(secret, "RS256", _claims(project)),
        "wrong secret": jwt.encode(_claims(project, admin=True), "x" * 64, algorithm="HS256"),
        "empty secret": _hs256_as("", "HS256", _claims(project, admin=True)),
        "expired": jwt.encode(
            _claims(project, exp=int(time.time()) - 5), secret, algorithm="HS256"
        ),
        "not yet valid (nbf)": jwt.encode(
            _claims(project, nbf=int(time.time()) + 3600), secret, algorithm="HS256"
        ),
        "no exp": jwt.encode(
            {k: v for k, v in _claims(project).items() if k != "exp"}, secret, algorithm="HS256"
        ),
        "projects not a list": jwt.encode(
            _claims(project, projects=project), secret, algorithm="HS256"
        ),
        "projects of numbers": jwt.encode(
            _claims(project, projects=[1]), secret, algorithm="HS256"
        ),
        "two tokens": f"{good} {good}",
        "garbage": "e30.e30.e30",
    }


def _hs256_as(secret: str, alg: str, claims: dict[str, object]) -> str:
    """The classic confusion: a header naming another algorithm, an HMAC over the secret."""
    header = _b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    payload = _b64(json.dumps(claims).encode())
    signature = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


async def _status(client: httpx.AsyncClient, method: str, url: str, **kw: object) -> int:
    async with client.stream(method, url, **kw) as r:  # type: ignore[arg-type]
        return r.status_code


async def test_forged_tampered_and_expired_tokens_are_401_on_every_route(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    project, sandbox = await live_sandbox(stack, "sec")
    tried = 0
    for name, forged in forgeries(stack.jwt_secret, project).items():
        SENT_TOKENS.append(forged)
        for method, template, _ in ROUTES:
            url = stack.status_api.url + template.format(project=project, sandbox=sandbox)
            status = await _status(
                client, method, url, headers={"Authorization": f"Bearer {forged}"}
            )
            assert status == 401, (name, method, template, status)
            if "stream" in template:  # EventSource's query token goes through the same check
                status = await _status(client, method, url, params={"access_token": forged})
                assert status == 401, (name, template, "access_token", status)
            tried += 1
    print(f"[security] forged tokens: {tried} route x token pairs refused")
    assert tried >= 150


async def test_claims_cannot_be_bent_into_admin(client: httpx.AsyncClient, stack: Stack) -> None:
    project, sandbox = await live_sandbox(stack, "sec")
    now = int(time.time())
    for admin in ("true", 1, [True], {"is": True}):
        claims = {"projects": [project], "admin": admin, "exp": now + 600}
        token = jwt.encode(claims, stack.jwt_secret, algorithm="HS256")
        SENT_TOKENS.append(token)
        headers = {"Authorization": f"Bearer {token}"}
        for method, template, admin_only in ROUTES:
            if not admin_only:
                continue
            url = stack.status_api.url + template.format(project=project, sandbox=sandbox)
            assert await _status(client, method, url, headers=headers) == 403, (admin, template)


async def test_a_query_token_only_opens_streams(client: httpx.AsyncClient, stack: Stack) -> None:
    project, _ = await live_sandbox(stack, "sec")
    token = mint(
        stack.jwt_secret,
        Claims(projects=[project], admin=False, ttl_seconds=600, now=int(time.time())),
    )
    SENT_TOKENS.append(token)
    url = f"{stack.status_api.url}/api/projects/{project}/sandbox"
    assert (await client.get(url, params={"access_token": token})).status_code == 401
    async with client.stream("GET", f"{url}/stream", params={"access_token": token}) as r:
        assert r.status_code == 200


async def test_no_secret_or_token_is_ever_logged(client: httpx.AsyncClient, stack: Stack) -> None:
    """Runs after the rest of the module (and whatever ran before it in the session): provokes
    the log lines most likely to leak (bad signatures, refused tokens), then reads every log."""
    body = webhook("created", unique("sbx"), unique("sec"))
    await post_webhook(client, stack, body, signature=e2b.compute_signature("leak?", body))
    await post_webhook(client, stack, body, signature=stack.webhook_secret)  # secret as a sig
    good = mint(
        stack.jwt_secret, Claims(projects=["p"], admin=True, ttl_seconds=600, now=int(time.time()))
    )
    SENT_TOKENS.append(good)
    for token in (good, stack.jwt_secret, f"{good}x"):
        await client.get(
            f"{stack.status_api.url}/api/sandboxes", headers={"Authorization": f"Bearer {token}"}
        )
    secrets: dict[str, Callable[[], str]] = {
        "E2B_WEBHOOK_SECRET": lambda: stack.webhook_secret,
        "STATUS_API_JWT_SECRET": lambda: stack.jwt_secret,
    }
    assert SENT_TOKENS
    for service in (stack.ingest, stack.projector, stack.status_api):
        text = service.log_path.read_text(errors="replace")
        assert text, f"{service.label} wrote no log at {service.log_path}"
        for name, value in secrets.items():
            assert value() not in text, f"{name} in {service.log_path}"
        leaked = [t[:20] for t in SENT_TOKENS if t.split(".")[-1] and t in text]
        assert not leaked, f"bearer tokens in {service.log_path}: {leaked}"
