"""Signature and token checks compare in constant time: hmac.compare_digest decides, never ==.

Asserted by spying on hmac.compare_digest (no timing measurements: they would be flaky)."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable

import pytest

from sandbox_common import e2b
from status_api.auth import AuthError, Claims, TokenVerifier, mint

SECRET = "whsec-constant-time-0123456789abcdef"
BODY = b'{"id": "e1"}'

Spy = list[tuple[bytes | str, bytes | str]]


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> Callable[[bool | None], Spy]:
    """Replaces hmac.compare_digest; `answer` None passes through, else forces the result."""

    def install(answer: bool | None) -> Spy:
        calls: Spy = []
        real = hmac.compare_digest

        def compare(a: bytes | str, b: bytes | str) -> bool:
            calls.append((a, b))
            return real(a, b) if answer is None else answer  # type: ignore[arg-type]

        monkeypatch.setattr(hmac, "compare_digest", compare)
        return calls

    return install


def test_the_webhook_signature_is_compared_with_compare_digest(
    spy: Callable[[bool | None], Spy],
) -> None:
    calls = spy(None)
    good = e2b.compute_signature(SECRET, BODY)
    assert e2b.verify_signature(SECRET, BODY, good)
    assert not e2b.verify_signature(SECRET, BODY, good[:-1] + ("A" if good[-1] != "A" else "B"))
    assert calls == [(good.encode(), good.encode()), (good.encode(), calls[1][1])]


@pytest.mark.parametrize("forced", [True, False])
def test_compare_digest_alone_decides(spy: Callable[[bool | None], Spy], forced: bool) -> None:
    """If anything else (==, a prefix check) decided, forcing the comparison would not matter."""
    spy(forced)
    good = e2b.compute_signature(SECRET, BODY)
    assert e2b.verify_signature(SECRET, BODY, good) is forced
    assert e2b.verify_signature(SECRET, BODY, "A" * len(good)) is forced


def test_the_jwt_signature_is_compared_with_compare_digest(
    spy: Callable[[bool | None], Spy],
) -> None:
    calls = spy(False)  # PyJWT verifies HS256 with hmac.compare_digest: forced False refuses
    token = mint(SECRET, Claims(projects=["p1"], admin=False, ttl_seconds=60, now=int(time.time())))
    with pytest.raises(AuthError, match="Signature verification failed"):
        TokenVerifier(SECRET).principal(f"Bearer {token}")
    assert len(calls) == 1
