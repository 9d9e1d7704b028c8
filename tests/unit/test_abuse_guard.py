"""Who pays for abuse: the status-api rate limit is per verified token, however its header is
spelled; refused authentications (bad tokens, bad webhook signatures) are throttled per client
address before the expensive check, and a flood of bad signatures writes a line per window."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import msgspec
import pytest
from litestar.exceptions import NotAuthorizedException, TooManyRequestsException

from ingest.answers import answer
from ingest.guard import SignatureGuard
from sandbox_common import e2b
from sandbox_common.rate_limit import RateLimiter
from status_api.access import Gate
from status_api.auth import Claims, TokenVerifier, mint
from tests.unit.test_e2b_webhooks import SECRET as WEBHOOK_SECRET
from tests.unit.test_ingest_intake import BODY, make

JWT_SECRET = "j" * 32


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingVerifier(TokenVerifier):
    """Counts the HMAC checks (verifications of a token not in the cache)."""

    verified = 0

    def _verify(self, token: str) -> tuple[object, float]:  # type: ignore[override]
        CountingVerifier.verified += 1
        return super()._verify(token)


def token(subject: str = "dev") -> str:
    claims = Claims(projects=["p1"], admin=False, ttl_seconds=600, now=int(time.time()))
    return mint(JWT_SECRET, Claims(**{**claims.__dict__, "subject": subject}))


def gate(clock: Clock, per_second: float = 1.0, failures_burst: int = 0) -> Gate:
    failures = RateLimiter(failures_burst / 10, clock, burst=failures_burst)
    return Gate(CountingVerifier(JWT_SECRET), RateLimiter(per_second, clock), failures)


def test_spellings_of_one_token_share_one_bucket() -> None:
    clock = Clock()
    g = gate(clock)  # 1/s, a burst of 2
    t = token()
    g.check(f"Bearer {t}", "10.0.0.1")
    g.check(f"bearer  {t}", "10.0.0.1")
    for spelling in (f"Bearer {t}", f"BEARER {t} ", f"Bearer  {t}", f" bearer\t{t}"):
        with pytest.raises(TooManyRequestsException):
            g.check(spelling, "10.0.0.2")


def test_two_tokens_have_a_bucket_each() -> None:
    g = gate(Clock())
    first, second = token("a"), token("b")
    for _ in range(2):
        g.check(f"Bearer {first}", "10.0.0.1")
    with pytest.raises(TooManyRequestsException):
        g.check(f"Bearer {first}", "10.0.0.1")
    g.check(f"Bearer {second}", "10.0.0.1")


def test_bad_tokens_are_throttled_per_address_before_they_are_verified() -> None:
    clock = Clock()
    g = gate(clock, per_second=0, failures_burst=3)
    forged = mint(
        "x" * 32, Claims(projects=["p1"], admin=True, ttl_seconds=60, now=int(time.time()))
    )
    good = token()
    g.check(f"Bearer {good}", "10.0.0.1")  # verified and cached before the flood
    CountingVerifier.verified = 0
    for _ in range(3):
        with pytest.raises(NotAuthorizedException):
            g.check(f"Bearer {forged}", "10.0.0.1")
    assert CountingVerifier.verified == 3
    for header in (f"Bearer {forged}", "Bearer garbage", None, f"Bearer {token('new')}"):
        with pytest.raises(TooManyRequestsException) as throttled:
            g.check(header, "10.0.0.1")
        assert int((throttled.value.headers or {})["Retry-After"]) >= 1
    assert CountingVerifier.verified == 3  # no HMAC computed for the throttled ones
    # A token this process verified before is still served from that address (no HMAC).
    assert g.check(f"Bearer {good}", "10.0.0.1").may_read("p1")
    # Other addresses are not affected.
    with pytest.raises(NotAuthorizedException):
        g.check(f"Bearer {forged}", "10.0.0.2")
    assert g.check(f"Bearer {token('other')}", "10.0.0.3").may_read("p1")
    clock.now += 10  # the budget refills
    with pytest.raises(NotAuthorizedException):
        g.check(f"Bearer {forged}", "10.0.0.1")


def test_the_fast_lane_computes_no_hmac() -> None:
    g = gate(Clock(), per_second=0)
    t = token("fast")
    CountingVerifier.verified = 0
    assert g.known_principal(f"Bearer {t}") is None  # not verified yet: Litestar's turn
    assert g.known_principal("Bearer garbage") is None
    assert CountingVerifier.verified == 0
    g.check(f"Bearer {t}", "10.0.0.1")
    principal = g.known_principal(f"bearer  {t}")
    assert principal is not None
    assert principal.may_read("p1")


def _guard(clock: Clock, burst: int = 3) -> SignatureGuard:
    return SignatureGuard(RateLimiter(burst / 10, clock, burst=burst), 10.0, clock)


async def test_an_address_sending_bad_signatures_is_answered_429_before_the_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    intake, publisher, _ = make()
    clock = Clock()
    guard = _guard(clock)
    checks: list[str] = []
    real = e2b.verify_signature

    def counted(secret: str, body: bytes, signature: str | None) -> bool:
        checks.append(secret)
        return real(secret, body, signature)

    monkeypatch.setattr(e2b, "verify_signature", counted)
    for _ in range(3):
        assert (await answer(intake, guard, BODY, "forged", "10.0.0.1")).status_code == 401
    assert len(checks) == 3
    throttled = await answer(intake, guard, BODY, "forged", "10.0.0.1")
    assert throttled.status_code == 429
    assert int(throttled.headers["Retry-After"]) >= 1
    assert msgspec.json.decode(throttled.body)["extra"] == {"reason": "throttled"}
    assert len(checks) == 3  # no HMAC for the throttled delivery
    # A good sender elsewhere is not affected.
    good = await answer(
        intake, guard, BODY, e2b.compute_signature(WEBHOOK_SECRET, BODY), "10.0.0.2"
    )
    assert good.status_code == 200
    assert len(publisher.published) == 1
    clock.now += 10
    assert (await answer(intake, guard, BODY, "forged", "10.0.0.1")).status_code == 401


def test_a_flood_of_bad_signatures_writes_one_line_per_window_per_address(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    guard = _guard(clock, burst=1000)

    def lines() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.getMessage() == "[E2B Webhook] Invalid signature"]

    with caplog.at_level(logging.WARNING, logger="ingest"):
        for _ in range(500):
            guard.refused("10.0.0.1", "mismatch")
        guard.refused("10.0.0.2", "missing")
        assert len(lines()) == 2
        clock.now += 10
        guard.refused("10.0.0.1", "mismatch")
    first, other, later = lines()
    assert (first.__dict__["client"], first.__dict__["suppressed"]) == ("10.0.0.1", 0)
    assert (other.__dict__["reason"], other.__dict__["client"]) == ("missing", "10.0.0.2")
    assert later.__dict__["suppressed"] == 499
