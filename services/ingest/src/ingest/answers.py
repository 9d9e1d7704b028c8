"""The answer to one webhook delivery, the same whichever path serves it (the Litestar route or
the fast lane). Errors keep Litestar's JSON shape: `{status_code, detail, extra: {reason}}`."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import msgspec

from ingest import metrics
from ingest.guard import SignatureGuard
from ingest.handlers import Outcome, Result, WebhookIntake
from sandbox_common.kafka_publisher import BrokerUnavailableError

log = logging.getLogger("ingest")
_encoder = msgspec.json.Encoder()

_STATUS = {
    Outcome.ACCEPTED: 200,
    Outcome.DUPLICATE: 200,
    Outcome.REJECTED_SIGNATURE: 401,
    Outcome.REJECTED_PAYLOAD: 400,
}
_OUTCOMES = {o: metrics.WEBHOOKS.labels(outcome=o.value) for o in Outcome}
_UNAVAILABLE = metrics.WEBHOOKS.labels(outcome="unavailable")
_THROTTLED = metrics.WEBHOOKS.labels(outcome="throttled")


class WebhookAnswer(msgspec.Struct, frozen=True, rename="camel"):
    status: str  # accepted | duplicate
    event_id: str


@dataclass(frozen=True, slots=True)
class Answer:
    status_code: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def _error(status_code: int, detail: str, reason: str) -> bytes:
    return _encoder.encode(
        {"status_code": status_code, "detail": detail, "extra": {"reason": reason}}
    )


async def answer(
    intake: WebhookIntake,
    guard: SignatureGuard,
    body: bytes,
    signature: str | None,
    address: str,
) -> Answer:
    """`address`: the client's, which `guard` throttles when it keeps failing its signature."""
    wait = guard.wait(address)
    if wait > 0:
        _THROTTLED.inc()
        detail = "too many deliveries with a bad signature from this address; slow down"
        retry_after = str(max(1, math.ceil(wait)))
        return Answer(429, _error(429, detail, "throttled"), {"Retry-After": retry_after})
    try:
        result: Result = await intake.accept(body, signature)
    except BrokerUnavailableError as exc:
        _UNAVAILABLE.inc()
        log.error("[E2B Webhook] Not accepted, broker unavailable: %s", exc)
        detail = "event not durable yet: the broker did not acknowledge; retry"
        return Answer(503, _error(503, detail, "broker_unavailable"), {"Retry-After": "5"})
    _OUTCOMES[result.outcome].inc()
    if result.outcome is Outcome.REJECTED_SIGNATURE:
        guard.refused(address, result.reason or "mismatch")
    status_code = _STATUS[result.outcome]
    if result.event_id is None:
        detail = result.detail or result.outcome.value
        return Answer(status_code, _error(status_code, detail, result.outcome.value))
    return Answer(
        status_code, _encoder.encode(WebhookAnswer(result.outcome.value, result.event_id))
    )
