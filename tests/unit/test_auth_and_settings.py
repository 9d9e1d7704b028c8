from __future__ import annotations

import time
from datetime import UTC, datetime

import jwt
import pytest

from sandbox_common.settings import SettingsError, load
from sandboxctl.settings import Settings
from status_api.auth import AuthError, Claims, TokenPolicy, TokenVerifier, mint

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


def test_a_controlled_clock_is_for_dev_mode_only_and_runs_ahead_by_its_offset() -> None:
    with pytest.raises(SettingsError, match="DEV_CLOCK_OFFSET_SECONDS needs DEV_MODE"):
        load(Settings, {"DEV_CLOCK_OFFSET_SECONDS": "3600"})
    ahead = load(Settings, {"DEV_CLOCK_OFFSET_SECONDS": "3600", "DEV_MODE": "true"}).clock()
    assert abs((ahead() - datetime.now(UTC)).total_seconds() - 3600) < 5
    plain = load(Settings, {}).clock()
    assert abs((plain() - datetime.now(UTC)).total_seconds()) < 5


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


def _claims(**kw: object) -> Claims:
    base: dict[str, object] = {"projects": ["p1"], "admin": False, "ttl_seconds": 60}
    return Claims(**{**base, "now": int(time.time()), **kw})  # type: ignore[arg-type]


_ISSUER = TokenPolicy(issuer="https://id.example")
_AUDIENCE = TokenPolicy(audience="status-api")


@pytest.mark.parametrize(
    ("policy", "minted", "refused"),
    [
        (_ISSUER, {"issuer": "https://id.example"}, False),
        (_ISSUER, {"issuer": "https://evil.example"}, True),
        (_ISSUER, {}, True),  # no iss at all
        (_AUDIENCE, {"audience": "status-api"}, False),
        (_AUDIENCE, {"audience": "billing"}, True),
        (_AUDIENCE, {}, True),
    ],
)
def test_the_issuer_and_audience_are_checked_when_set(
    policy: TokenPolicy, minted: dict[str, str], refused: bool
) -> None:
    """Issue 15, item 11: tokens of another issuer or for another audience that happen to
    share the secret are refused."""
    verifier = TokenVerifier(SECRET, policy)
    token = bearer(mint(SECRET, _claims(**minted)))
    if refused:
        with pytest.raises(AuthError):
            verifier.principal(token)
    else:
        assert verifier.principal(token).may_read("p1")


def test_a_token_living_longer_than_the_maximum_is_refused_by_default() -> None:
    """STATUS_API_JWT_MAX_TTL_SECONDS defaults to a day: a token minted for a year is refused
    although its signature and exp are fine; without iat, its exp may be at most a day away."""
    policy = load(Settings, {}).token_policy()
    verifier = TokenVerifier(SECRET, policy)
    with pytest.raises(AuthError, match="lives longer"):
        verifier.principal(bearer(mint(SECRET, _claims(ttl_seconds=365 * 86400))))
    assert verifier.principal(bearer(mint(SECRET, _claims(ttl_seconds=86400)))).may_read("p1")
    now = int(time.time())
    soon = jwt.encode({"projects": ["p1"], "exp": now + 600}, SECRET, "HS256")
    assert verifier.principal(bearer(soon)).may_read("p1")
    far = jwt.encode({"projects": ["p1"], "exp": now + 30 * 86400}, SECRET, "HS256")
    with pytest.raises(AuthError, match="lives longer"):
        verifier.principal(bearer(far))


def test_sandboxctl_mints_tokens_the_configured_policy_accepts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = {
        "STATUS_API_JWT_SECRET": SECRET,
        "STATUS_API_JWT_ISSUER": "https://id.example",
        "STATUS_API_JWT_AUDIENCE": "status-api",
    }
    settings = load(Settings, env)
    from sandboxctl.cli import main

    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        main(["token", "--project", "p1"])
    token = capsys.readouterr().out.strip()
    assert TokenVerifier(SECRET, settings.token_policy()).principal(bearer(token)).may_read("p1")
