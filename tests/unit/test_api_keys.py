"""Project API keys without PostgreSQL: their shape, the stored digest, and status-api's check
(unknown, revoked, another secret under a known id; a row kept for the TTL, then read again)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sandbox_common.api_key_rows import StoredKey
from sandbox_common.api_keys import ApiKeyError, digest, issue, key_id_of, matches
from status_api.api_key_auth import ApiKeyVerifier
from status_api.auth import AuthError

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def test_an_issued_key_names_its_id_and_only_its_digest_is_kept() -> None:
    issued = issue()
    assert issued.key.startswith(f"sbk_{issued.key_id}_")
    assert key_id_of(issued.key) == issued.key_id
    assert key_id_of(f"  {issued.key} ") == issued.key_id  # header whitespace
    assert issued.digest == digest(issued.key)
    assert issued.key.encode() not in issued.digest
    assert matches(issued.key, issued.digest)
    assert not matches(issue().key, issued.digest)
    assert issue().key != issued.key


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Bearer x",
        "sbk_",
        "sbk_0123456789abcdef",
        "sbk_0123456789ABCDEF_" + "a" * 43,
        "sbk_0123456789abcdef_" + "a" * 42,
        "sbk_0123456789abcdef_" + "a" * 43 + "x",
    ],
)
def test_anything_else_is_not_a_key(text: str) -> None:
    with pytest.raises(ApiKeyError):
        key_id_of(text)


class Rows:
    def __init__(self, *keys: StoredKey) -> None:
        self.keys = {k.key_id: k for k in keys}
        self.asked: list[str] = []

    async def find(self, key_id: str) -> StoredKey | None:
        self.asked.append(key_id)
        return self.keys.get(key_id)


def stored(key_id: str, digest_: bytes, revoked: datetime | None = None) -> StoredKey:
    return StoredKey(key_id, "p1", digest_, "agent", T0, revoked)


async def test_a_key_acts_for_its_project_alone_and_its_row_is_read_once_per_ttl() -> None:
    issued = issue()
    rows = Rows(stored(issued.key_id, issued.digest))
    now = [0.0]
    verifier = ApiKeyVerifier(rows, clock=lambda: now[0], ttl_seconds=30)
    principal = await verifier.principal(issued.key)
    assert principal.projects == frozenset({"p1"})
    assert not principal.admin
    assert principal.api_key
    assert principal.token_id == f"apikey:{issued.key_id}"
    await verifier.principal(issued.key)
    assert rows.asked == [issued.key_id]
    # Revoked meanwhile: refused once the row is read again, at most a TTL later.
    rows.keys[issued.key_id] = stored(issued.key_id, issued.digest, revoked=T0)
    await verifier.principal(issued.key)
    now[0] = 31.0
    with pytest.raises(AuthError, match="revoked"):
        await verifier.principal(issued.key)
    assert rows.asked == [issued.key_id, issued.key_id]


async def test_unknown_ids_and_other_secrets_are_refused_alike() -> None:
    issued, other = issue(), issue()
    rows = Rows(stored(issued.key_id, issued.digest))
    verifier = ApiKeyVerifier(rows)
    with pytest.raises(AuthError, match="unknown API key"):
        await verifier.principal(other.key)
    head = len(f"sbk_{issued.key_id}_")  # the known id with another key's secret
    forged = issued.key[:head] + other.key[head:]
    assert key_id_of(forged) == issued.key_id
    with pytest.raises(AuthError, match="unknown API key"):
        await verifier.principal(forged)
    with pytest.raises(AuthError, match="not an API key"):
        await verifier.principal("not-a-key")
    # A made-up id is asked for once per TTL, not once per request.
    with pytest.raises(AuthError):
        await verifier.principal(other.key)
    assert rows.asked.count(other.key_id) == 1
