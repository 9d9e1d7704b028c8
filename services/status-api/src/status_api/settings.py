"""What status-api is given: Kafka (activity, wake, pause), Redis, PostgreSQL (history,
fleet), the token secret, the idle rule (the fleet's deadlines) and its own knobs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar

import msgspec

from sandbox_common.settings import (
    HttpServerSettings,
    IdleSettings,
    KafkaSettings,
    LogSettings,
    NonNegative,
    NonNegativeSeconds,
    NotifySettings,
    Port,
    Positive,
    PostgresSettings,
    PriceSettings,
    RedisSettings,
    RegretSettings,
    Seconds,
    hidden,
)
from status_api.auth import TokenPolicy

# E2B's refresh accepts a duration of 0..3600 seconds (reference/e2b.md, `POST /refreshes`).
KeepAliveSeconds = Annotated[int, msgspec.Meta(ge=1, le=3600)]


@dataclass(frozen=True, kw_only=True)
class StatusApiSettings(
    KafkaSettings,
    RedisSettings,
    PostgresSettings,
    IdleSettings,
    HttpServerSettings,
    NotifySettings,
    RegretSettings,
    PriceSettings,
    LogSettings,
):
    REQUIRED: ClassVar[tuple[str, ...]] = ("status_api_jwt_secret",)
    LISTEN_ON: ClassVar[tuple[str, str]] = ("status_api_host", "status_api_port")

    status_api_jwt_secret: str = hidden("")
    # Checked when set: tokens must name this issuer / audience (iss / aud claims).
    status_api_jwt_issuer: str = ""
    status_api_jwt_audience: str = ""
    # The longest a token may live (exp - iat), 0 = any: the app's identity provider mints
    # short-lived tokens; one minted for years is refused even before it leaks.
    status_api_jwt_max_ttl_seconds: NonNegative = 24 * 3600
    status_api_host: str = "127.0.0.1"
    status_api_port: Port = 8081
    # At most one activity fact per sandbox per this many seconds: a flood of heartbeats costs
    # a Redis SET each, not a Kafka record each (a few % of the idle window, as Coder does).
    activity_throttle_seconds: Seconds = 10.0
    # While a user is active, E2B's timeout is kept at least half this far ahead (set to this).
    e2b_keep_alive_seconds: KeepAliveSeconds = 600
    status_api_publish_timeout_seconds: Seconds = 5.0
    # A pauseImminent warning goes out this long before a RUNNING sandbox's idle deadline.
    status_api_warn_before_seconds: Positive = 30
    # A lifetimeEnding warning goes out this long before E2B ends a run whatever its activity
    # (maxLifetimeAt, from E2B_MAX_LIFETIME_SECONDS): time for the user to save their work.
    status_api_lifetime_warn_before_seconds: Positive = 300
    # A deleteImminent warning goes out this long before a project policy deletes a paused
    # sandbox (deleteAfterPausedSeconds): time to resume it and keep it.
    status_api_delete_warn_before_seconds: Positive = 3600
    # How far ahead a heartbeat's busyUntil may hold the idle deadline (an agent's task).
    status_api_busy_max_seconds: Positive = 86_400
    # SSE keep-alive comments: proxies drop connections that stay silent for a minute or so.
    status_api_sse_keepalive_seconds: Seconds = 15.0
    # Requests per second per token (a burst of twice that), 0 = unlimited.
    status_api_rate_limit_per_second: NonNegativeSeconds = 50.0
    # Request bodies (activity, wake: a few fields of JSON) above this are refused with 413.
    status_api_max_body_bytes: Positive = 8192
    # Server-sent event streams this process holds open at once (503 beyond, with Retry-After),
    # and per token (429 beyond): each is a held connection and a queue.
    status_api_max_streams: Positive = 10_000
    status_api_max_streams_per_token: Positive = 10
    # Comma-separated origins allowed by CORS ('*' for any); empty: no CORS headers at all.
    status_api_cors_origins: str = ""

    def token_policy(self) -> TokenPolicy:
        return TokenPolicy(
            issuer=self.status_api_jwt_issuer or None,
            audience=self.status_api_jwt_audience or None,
            max_ttl_seconds=self.status_api_jwt_max_ttl_seconds,
        )

    def secrets(self) -> dict[str, tuple[str, ...]]:
        jwt_secret = (self.status_api_jwt_secret,) if self.status_api_jwt_secret else ()
        return {**super().secrets(), "STATUS_API_JWT_SECRET": jwt_secret}
