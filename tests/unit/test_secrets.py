"""Secrets at start: shorter than 32 bytes, or a dev value this repository publishes outside dev
mode, and the process does not start; two webhook secrets can be active at once (rotation)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jwt
import pytest
import yaml

from ingest.settings import IngestSettings
from sandbox_common import e2b
from sandbox_common.settings import DEV_SECRETS, MIN_SECRET_BYTES, SettingsError, load
from sandboxctl.settings import Settings
from status_api.auth import Claims, TokenVerifier, mint
from status_api.settings import StatusApiSettings

CHART = Path(__file__).parents[2] / "deploy" / "helm" / "e2b-lifecycle"
LONG = "w" * MIN_SECRET_BYTES
OLD, NEW = "old-" + "o" * 40, "new-" + "n" * 40


@pytest.mark.parametrize(
    ("cls", "env", "variable"),
    [
        (IngestSettings, {"E2B_WEBHOOK_SECRET": "w" * 31}, "E2B_WEBHOOK_SECRET"),
        (IngestSettings, {"E2B_WEBHOOK_SECRETS": f"{LONG},short"}, "E2B_WEBHOOK_SECRETS"),
        (StatusApiSettings, {"STATUS_API_JWT_SECRET": "dev"}, "STATUS_API_JWT_SECRET"),
        (Settings, {"STATUS_API_JWT_SECRET": "s" * 20}, "STATUS_API_JWT_SECRET"),
    ],
)
def test_a_secret_shorter_than_32_bytes_is_refused_at_start(
    cls: type[IngestSettings | StatusApiSettings], env: dict[str, str], variable: str
) -> None:
    with pytest.raises(SettingsError, match=f"^{variable} is shorter than 32 bytes$") as refused:
        load(cls, env)
    assert "short" not in str(refused.value).replace("shorter", "")  # the value is never shown


def test_32_bytes_are_enough() -> None:
    assert load(IngestSettings, {"E2B_WEBHOOK_SECRET": LONG}).webhook_secrets() == (LONG,)
    assert load(StatusApiSettings, {"STATUS_API_JWT_SECRET": LONG}).status_api_jwt_secret == LONG


@pytest.mark.parametrize("secret", sorted(DEV_SECRETS))
def test_a_published_dev_secret_is_refused_outside_dev_mode(secret: str) -> None:
    for cls, variable in (
        (IngestSettings, "E2B_WEBHOOK_SECRET"),
        (StatusApiSettings, "STATUS_API_JWT_SECRET"),
    ):
        with pytest.raises(SettingsError, match=f"^{variable} is a development value"):
            load(cls, {variable: secret})
        assert load(cls, {variable: secret, "DEV_MODE": "true"}).dev_mode


def test_the_charts_dev_cluster_values_are_known_dev_secrets_in_dev_mode() -> None:
    values = yaml.safe_load((CHART / "ci" / "dev-rollback-values.yaml").read_text())
    assert values["secrets"]["e2bWebhookSecret"] in DEV_SECRETS
    assert values["secrets"]["statusApiJwtSecret"] in DEV_SECRETS
    assert values["config"]["devMode"] is True
    schema = json.loads((CHART / "values.schema.json").read_text())
    secrets = schema["properties"]["secrets"]["properties"]
    for name in ("e2bWebhookSecret", "statusApiJwtSecret"):
        assert {"minLength": MIN_SECRET_BYTES} in secrets[name]["anyOf"]


def test_pyjwt_refuses_a_short_key_rather_than_warning() -> None:
    now = int(time.time())
    with pytest.raises(ValueError, match="32 bytes"):
        TokenVerifier("s" * 31)
    with pytest.raises(jwt.InvalidKeyError):
        mint("s" * 31, Claims(projects=["p"], admin=False, ttl_seconds=60, now=now))


def test_ingest_accepts_a_signature_by_either_active_secret_the_current_first() -> None:
    settings = load(IngestSettings, {"E2B_WEBHOOK_SECRETS": f" {NEW} , {OLD} "})
    assert settings.webhook_secrets() == (NEW, OLD)
    assert settings.current_webhook_secret == NEW
    # E2B_WEBHOOK_SECRET alone still works
    alone = load(IngestSettings, {"E2B_WEBHOOK_SECRET": OLD})
    assert alone.webhook_secrets() == (OLD,)
    assert alone.current_webhook_secret == OLD
    with pytest.raises(SettingsError, match="E2B_WEBHOOK_SECRET"):
        load(IngestSettings, {"E2B_WEBHOOK_SECRETS": " , "})


async def test_a_delivery_signed_with_the_previous_secret_is_accepted() -> None:
    from ingest.handlers import Outcome, WebhookIntake
    from tests.unit.test_e2b_webhooks import V2
    from tests.unit.test_ingest_intake import FakeDedupe, FakePublisher

    intake = WebhookIntake((NEW, OLD), "projectId", FakePublisher(), FakeDedupe())
    body = json.dumps(V2).encode()
    for secret in (NEW, OLD):
        signature = e2b.compute_signature(secret, body)
        result = await intake.accept(body, signature)
        assert result.outcome in (Outcome.ACCEPTED, Outcome.DUPLICATE)
    refused = await intake.accept(body, e2b.compute_signature("third-" + "x" * 40, body))
    assert refused.outcome is Outcome.REJECTED_SIGNATURE
