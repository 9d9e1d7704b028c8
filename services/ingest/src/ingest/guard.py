"""Bad signatures, per client address: an address that keeps sending them is answered 429
before its next body is hashed and parsed, and the seed's `[E2B Webhook] Invalid signature`
line is written at most once per window per address, with how many were left out.

A flood of forged deliveries would otherwise cost an HMAC, a JSON error and a log line each;
good senders from other addresses are never slowed (each address has its own budget). Behind
a proxy, the address is the proxy's unless HTTP_TRUSTED_PROXIES names it (serving.HttpLimits).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable

from sandbox_common.rate_limit import RateLimiter

log = logging.getLogger("ingest")


class SignatureGuard:
    def __init__(
        self,
        limiter: RateLimiter,
        log_window_seconds: float,
        clock: Callable[[], float],
        max_tracked: int = 10_000,
    ) -> None:
        self._limiter = limiter
        self._window = log_window_seconds
        self._clock = clock
        # address -> (when its line was last written, lines left out since)
        self._logged: OrderedDict[str, tuple[float, int]] = OrderedDict()
        self._max_tracked = max_tracked

    def wait(self, address: str) -> float:
        """Seconds before this address may be heard again; 0: go ahead."""
        return self._limiter.wait(address)

    def refused(self, address: str, reason: str) -> None:
        """A delivery from `address` failed its signature check (`reason`: missing, mismatch)."""
        self._limiter.retry_after(address)
        now = self._clock()
        last, left_out = self._logged.get(address, (float("-inf"), 0))
        if now - last < self._window:
            self._logged[address] = (last, left_out + 1)
            return
        self._logged[address] = (now, 0)
        self._logged.move_to_end(address)
        if len(self._logged) > self._max_tracked:
            self._logged.popitem(last=False)
        log.warning(
            "[E2B Webhook] Invalid signature",
            extra={"reason": reason, "client": address, "suppressed": left_out},
        )
