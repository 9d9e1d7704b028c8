from __future__ import annotations

import time

import jwt
import pytest

from sandbox_common.settings import SettingsError, load
from sandboxctl.settings import Settings
from status_api.auth import AuthError, Claims, TokenVerifier, mint

SECRET = "s" * 32


def bearer(token: str) -> str:
    return f"Bearer {token}"


def test_minted_token_grants_its_projects_only() -> None:
    token = mint(SECRET, Claims(projects=["p1"], admin=False, ttl_seconds=60, now=int(time.time())))
    principal = TokenVerifier(SECRET).principal(bearer(token))
    assert principal.may_read("p1")
    assert not principal.may_read("p2")
    assert not principal.may_read(None)


def test_admin_reads_everything() -> None:
    token = mint(SECRET, Claims(projects=[], admin=True, ttl_seconds=60, now=int(time.time())))
    assert TokenVerifier(SECRET).principal(bearer(token)).may_read("anything")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "Basic abc",
        bearer("not-a-jwt"),
        bearer(
            mint(
                "other" * 8,
                Claims(projects=["p1"], admin=False, ttl_seconds=60, now=int(time.time())),
            )
        ),
        bearer(
            mint(
                SECRET,
                Claims(projects=["p1"], admin=False, ttl_seconds=60, now=int(time.time()) - 3600),
            )
        ),
        bearer(
            jwt.encode(
                {"projects": ["p1"], "admin": True, "exp": int(time.time()) + 60},
                None,
                algorithm="none",
            )
        ),
        bearer(jwt.encode({"projects": ["p1"]}, SECRET, algorithm="HS256")),  # no exp
        bearer(
            jwt.encode({"projects": "p1", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
        ),
    ],
    ids=[
        "missing",
        "basic",
        "garbage",
        "wrong-key",
        "expired",
        "alg-none",
        "no-exp",
        "projects-not-list",
    ],
)
def test_unusable_tokens_are_refused(header: str | None) -> None:
    with pytest.raises(AuthError):
        TokenVerifier(SECRET).principal(header)


def test_settings_from_env_with_defaults_and_overrides() -> None:
    s = load(Settings, {"IDLE_TIMEOUT_SECONDS": "60", "PROJECT_METADATA_KEY": "pid"})
    assert s.idle_timeout_seconds == 60
    assert s.project_metadata_key == "pid"
    assert s.enforcer_schedule == "*/2 * * * *"
    assert s.kafka_bootstrap_servers == "127.0.0.1:9092"


def test_bad_number_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="IDLE_TIMEOUT_SECONDS"):
        load(Settings, {"IDLE_TIMEOUT_SECONDS": "three"})


def test_secrets_never_in_repr() -> None:
    s = load(
        Settings,
        {
            "E2B_WEBHOOK_SECRET": "hush-1" * 8,
            "STATUS_API_JWT_SECRET": "hush-2" * 8,
            "E2B_API_KEY": "hush-3",
            "DATABASE_URL": "postgresql://u:hush-4@h/db",
        },
    )
    assert not any(secret in repr(s) for secret in ("hush-1" * 8, "hush-2" * 8, "hush-3", "hush-4"))


def test_require_names_missing_settings() -> None:
    with pytest.raises(SettingsError, match="E2B_WEBHOOK_SECRET"):
        load(Settings, {}).require("e2b_webhook_secret")


def test_cached_token_is_refused_once_expired() -> None:
    verifier = TokenVerifier(SECRET)
    header = bearer(
        mint(SECRET, Claims(projects=["p1"], admin=False, ttl_seconds=1, now=int(time.time())))
    )
    assert verifier.principal(header).may_read("p1")
    assert verifier.principal(header).may_read("p1")  # from the cache
    time.sleep(1.1)
    with pytest.raises(AuthError, match="expired"):
        verifier.principal(header)


def test_a_refused_token_is_never_cached() -> None:
    verifier = TokenVerifier(SECRET)
    forged = bearer(
        mint("x" * 32, Claims(projects=["p1"], admin=True, ttl_seconds=60, now=int(time.time())))
    )
    for _ in range(2):
        with pytest.raises(AuthError):
            verifier.principal(forged)
