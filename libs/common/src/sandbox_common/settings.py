"""Settings, read from the environment once at start-up and passed down (never read at import).

Each process has its own settings class (ingest/settings.py, ...) made of the groups below,
named in its bases in their order here so that sandboxctl's class, which runs every part, can
inherit from them all: a process is given only the settings and secrets it uses. A variable is
named as its field, upper-cased (`redis_url` is REDIS_URL); an empty one counts as unset.
Values are parsed strictly, with their bounds: a typo stops the process at start with one line
naming the variable and what it expects (`ENFORCER_DRY_RUN=ture` must not silently mean
false). Secrets are kept out of repr() so they never reach a log line by accident.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, ClassVar, Literal, NoReturn, TypeVar

import msgspec
import redis.asyncio as aioredis

from sandbox_common import redis_pool
from sandbox_common.kafka_connection import KafkaConnection, KafkaSecurityError, SecurityProtocol
from sandbox_common.notifications.destinations import Reach
from sandbox_common.rate_limit import RateLimiter
from sandbox_common.readmodel import Layout
from sandbox_common.readmodel.deadlines import DeadlineRule

# Bounds, as types: a value outside them is refused at start.
Positive = Annotated[int, msgspec.Meta(ge=1)]
NonNegative = Annotated[int, msgspec.Meta(ge=0)]
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
Seconds = Annotated[float, msgspec.Meta(gt=0)]
NonNegativeSeconds = Annotated[float, msgspec.Meta(ge=0)]
Price = Annotated[float, msgspec.Meta(ge=0)]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]

_TRUE = {"1", "true", "yes", "on"}

# A secret shorter than this is refused at start: HS256 wants a key at least as long as its
# digest (RFC 7518 3.2; PyJWT's minimum key length), and the webhook HMAC is the same primitive.
MIN_SECRET_BYTES = 32
# Secrets this repository ships (the chart's dev-cluster values): anyone can read them, so a
# process refuses them unless DEV_MODE says it is a dev machine.
DEV_SECRETS = frozenset(
    {
        "dev-webhook-secret-for-dev-clusters-only",
        "dev-jwt-secret-for-dev-clusters-only-0123",
    }
)
_FALSE = {"0", "false", "no", "off"}


def hidden(default: str) -> Any:
    """A setting never shown by repr() (a secret, or a URL that may carry a password)."""
    return field(default=default, repr=False)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the variable."""


@dataclass(frozen=True, kw_only=True)
class BaseSettings:
    # Secrets a process cannot start without (checked by `load`, named when missing).
    REQUIRED: ClassVar[tuple[str, ...]] = ()
    # The process's host and port settings (sandbox_common.serving.listen_address).
    LISTEN_ON: ClassVar[tuple[str, str]] = ("", "")

    # A dev machine: the repository's known dev secrets are accepted (never in production).
    dev_mode: bool = False
    # Dev mode only: the enforcer's, the actuator's and status-api's clock runs this far ahead
    # of the machine's (a test's controlled clock: a quiet-hours window at any time of day).
    dev_clock_offset_seconds: float = 0.0

    def require(self, *names: str) -> None:
        """Fail fast, naming the variables, when a command needs a setting that is unset."""
        missing = [n.upper() for n in names if not self.has(n)]
        if missing:
            raise SettingsError(f"missing required setting(s): {', '.join(missing)}")

    def has(self, name: str) -> bool:
        return bool(getattr(self, name))

    def secrets(self) -> dict[str, tuple[str, ...]]:
        """The secrets this process was given, by variable: each group adds its own."""
        return {}

    def check(self) -> None:
        """Refuse settings that contradict each other: each group adds its own rules."""
        if self.dev_clock_offset_seconds and not self.dev_mode:
            raise SettingsError("DEV_CLOCK_OFFSET_SECONDS needs DEV_MODE=true (tests only)")

    def clock(self) -> Callable[[], datetime]:
        """Now, as the deciding processes see it (DEV_CLOCK_OFFSET_SECONDS ahead in tests)."""
        offset = timedelta(seconds=self.dev_clock_offset_seconds)
        if not offset:
            return _utc_now
        return lambda: datetime.now(UTC) + offset

    def check_secrets(self) -> None:
        """Refuse a short secret, or a known dev one outside dev mode (named, never shown)."""
        for name, values in self.secrets().items():
            for value in values:
                if len(value.encode()) < MIN_SECRET_BYTES:
                    raise SettingsError(f"{name} is shorter than {MIN_SECRET_BYTES} bytes")
                if value in DEV_SECRETS and not self.dev_mode:
                    raise SettingsError(
                        f"{name} is a development value published in this repository; "
                        "set a secret of your own (DEV_MODE=true accepts it on a dev machine)"
                    )


# -- groups, shared by the processes' settings ----------------------------------------------


@dataclass(frozen=True, kw_only=True)
class KafkaSettings(BaseSettings):
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    # TLS and SASL toward the broker (a managed Kafka): their rules and how each client is given
    # them are sandbox_common.kafka_connection's.
    kafka_security_protocol: SecurityProtocol = "PLAINTEXT"
    kafka_sasl_mechanism: str = ""
    kafka_sasl_username: str = ""
    kafka_sasl_password: str = hidden("")
    kafka_ssl_cafile: str = ""
    kafka_ssl_certfile: str = ""
    kafka_ssl_keyfile: str = ""

    def kafka_connection(self) -> KafkaConnection:
        """Every Kafka client the process makes is given this (never the bare servers)."""
        return KafkaConnection(
            self.kafka_bootstrap_servers,
            self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism.upper(),
            sasl_username=self.kafka_sasl_username,
            sasl_password=self.kafka_sasl_password,
            ssl_cafile=self.kafka_ssl_cafile,
            ssl_certfile=self.kafka_ssl_certfile,
            ssl_keyfile=self.kafka_ssl_keyfile,
        )

    def check(self) -> None:
        super().check()
        try:
            self.kafka_connection()
        except KafkaSecurityError as exc:
            raise SettingsError(str(exc)) from None


@dataclass(frozen=True, kw_only=True)
class RedisSettings(BaseSettings):
    redis_url: str = hidden("redis://127.0.0.1:6379/0")
    # Bounded pools: a burst waits for a connection instead of opening thousands of them.
    redis_max_connections: Positive = 64
    # REDIS_URL names a node of a Redis Cluster: redis-py's cluster client (redis_pool.py).
    redis_cluster: bool = False
    # The read model's shards (indexes and change streams, one hash tag each): fixed for a
    # deployment; a change makes the projector rebuild the model from PostgreSQL.
    read_model_shards: Annotated[int, msgspec.Meta(ge=1, le=1024)] = 16

    def redis(self, *, blocking: bool = True) -> aioredis.Redis:
        """A client of this Redis (or cluster); opens nothing until its first command."""
        return redis_pool.redis_client(
            self.redis_url,
            self.redis_max_connections,
            blocking=blocking,
            cluster=self.redis_cluster,
        )

    def redis_layout(self) -> Layout:
        return Layout(self.read_model_shards)


@dataclass(frozen=True, kw_only=True)
class PostgresSettings(BaseSettings):
    database_url: str = hidden("postgresql://sandboxes:sandboxes@127.0.0.1:5432/sandboxes")


@dataclass(frozen=True, kw_only=True)
class E2BApiSettings(BaseSettings):
    e2b_api_url: str = "https://api.e2b.app"
    e2b_api_key: str = hidden("")
    # Toward E2B: per-call timeout, concurrent calls, and a token bucket well under E2B's
    # 20,000 requests / 30 s per team.
    e2b_timeout_seconds: Seconds = 10.0
    e2b_max_concurrency: Positive = 32
    e2b_rate_per_second: Seconds = 100.0
    e2b_rate_burst: Positive = 100


@dataclass(frozen=True, kw_only=True)
class ProjectKeySettings(BaseSettings):
    # The sandbox metadata key that names a sandbox's project.
    project_metadata_key: str = "projectId"


@dataclass(frozen=True, kw_only=True)
class WebhookSecretSettings(BaseSettings):
    # E2B signs each webhook with it (ingest verifies; sandboxctl registers and sends them).
    e2b_webhook_secret: str = hidden("")
    # Rotation: comma-separated, the current one first (signs and registers); ingest accepts
    # a signature by any of them, so deliveries signed with the previous one are not lost.
    e2b_webhook_secrets: str = hidden("")

    def webhook_secrets(self) -> tuple[str, ...]:
        """The accepted webhook secrets, the current one first."""
        if self.e2b_webhook_secrets:
            listed = (s.strip() for s in self.e2b_webhook_secrets.split(","))
            return tuple(s for s in listed if s)
        return (self.e2b_webhook_secret,) if self.e2b_webhook_secret else ()

    @property
    def current_webhook_secret(self) -> str:
        secrets = self.webhook_secrets()
        return secrets[0] if secrets else ""

    def has(self, name: str) -> bool:
        if name == "e2b_webhook_secret":
            return bool(self.webhook_secrets())
        return super().has(name)

    def secrets(self) -> dict[str, tuple[str, ...]]:
        name = "E2B_WEBHOOK_SECRETS" if self.e2b_webhook_secrets else "E2B_WEBHOOK_SECRET"
        return {**super().secrets(), name: self.webhook_secrets()}


@dataclass(frozen=True, kw_only=True)
class IdleSettings(BaseSettings):
    # The idle timeout a sandbox gets unless its metadata says otherwise (readmodel/deadlines.py).
    idle_timeout_seconds: Positive = 180
    # E2B's maximum instance length for the team's plan (24 h on Pro, 1 h on Hobby): a run ends
    # this long after it started, whatever the activity. Shown as maxLifetimeAt.
    e2b_max_lifetime_seconds: Positive = 86_400
    # A resume this soon after our idle pause undid it (flapping: e.g. health probes waking an
    # auto-resume sandbox); from the second such pause on, the idle timeout backs off.
    idle_flap_window_seconds: Positive = 120
    # Changes kept in the Redis change feed for SSE clients that resume with Last-Event-ID.
    change_feed_max_length: Positive = 50_000

    def deadline_rule(self) -> DeadlineRule:
        return DeadlineRule(
            self.idle_timeout_seconds,
            self.e2b_max_lifetime_seconds,
            self.idle_flap_window_seconds,
        )


@dataclass(frozen=True, kw_only=True)
class NotifySettings(BaseSettings):
    # How far inside our own networks a project's notification URL may point: public only,
    # loopback too (the dev stack's receivers), or the private ranges too. Link-local (the
    # clouds' metadata services) never.
    # (any case, as every such setting).
    notify_reach: Literal["PUBLIC", "LOOPBACK", "PRIVATE"] = "PUBLIC"
    # A delivery is tried this often (backing off from 1 s to NOTIFY_BACKOFF_CAP_SECONDS) before
    # it is dead-lettered with its last error.
    notify_max_attempts: Positive = 12
    notify_backoff_cap_seconds: Seconds = 60.0
    # One POST to a receiver, connect to last byte.
    notify_timeout_seconds: Seconds = 10.0

    def reach(self) -> Reach:
        return Reach[self.notify_reach]


@dataclass(frozen=True, kw_only=True)
class RegretSettings(BaseSettings):
    # A pause the user undid (came back) within this many seconds is a regret (the adaptive
    # idle rule's learner, the savings ledger, what-if).
    regret_window_seconds: Positive = 300


@dataclass(frozen=True, kw_only=True)
class PriceSettings(BaseSettings):
    # What a running second costs, for the savings ledger and what-if: E2B's published prices
    # in USD per vCPU-second and per GiB-second of memory (a paused sandbox costs nothing).
    price_vcpu_second: Price = 0.000014
    price_gib_second: Price = 0.0000045


@dataclass(frozen=True, kw_only=True)
class HttpServerSettings(BaseSettings):
    # Proxies (comma-separated IPs or networks, '*' any) whose X-Forwarded-For names the client
    # address: the address refused authentications are throttled by. Empty: the peer's address.
    http_trusted_proxies: str = ""
    # Refused authentications (bad tokens, bad webhook signatures) per client address: a
    # burst of this many, then this many per HTTP_AUTH_FAILURE_WINDOW_SECONDS; 0 = unlimited.
    http_auth_failure_burst: NonNegative = 20
    http_auth_failure_window_seconds: Seconds = 10.0
    # Slow clients: a request's header section must arrive within this, its body within the
    # next, or the connection is closed (408 when no answer was started); headers are capped.
    http_header_timeout_seconds: Seconds = 10.0
    http_body_timeout_seconds: Seconds = 30.0
    http_max_header_bytes: Positive = 64 * 1024
    # Idle keep-alive connections are closed after this (uvicorn's timeout_keep_alive).
    http_keep_alive_seconds: Positive = 5
    # Open connections plus running requests; beyond it new requests get 503 (event streams
    # count: a thousand browsers following their sandbox are a thousand connections).
    http_max_concurrency: Positive = 4096

    def auth_failure_limiter(self, clock: Callable[[], float]) -> RateLimiter:
        per_second = self.http_auth_failure_burst / self.http_auth_failure_window_seconds
        return RateLimiter(per_second, clock, burst=self.http_auth_failure_burst)


@dataclass(frozen=True, kw_only=True)
class LogSettings(BaseSettings):
    log_level: LogLevel = "INFO"


# -- loading ----------------------------------------------------------------------------------

S = TypeVar("S", bound=BaseSettings)


def load(cls: type[S], env: Mapping[str, str] | None = None) -> S:
    """`cls` from the environment (or `env`); raises SettingsError naming the variable."""
    source = os.environ if env is None else env
    hints = typing.get_type_hints(cls, include_extras=True)
    raw: dict[str, str] = {}
    for f in dataclasses.fields(cls):
        value = source.get(f.name.upper())
        if value is not None and value != "":
            raw[f.name] = _normalise(value, hints[f.name])
    try:
        settings = msgspec.convert(raw, cls, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(_explain(exc, raw, hints)) from None
    settings.require(*cls.REQUIRED)
    settings.check_secrets()
    settings.check()
    return settings


def load_or_exit(cls: type[S], process: str, env: Mapping[str, str] | None = None) -> S:
    """For a process's main(): a bad setting ends the start with one line on stderr (exit 2),
    not a traceback, and never a start with a value it did not mean."""
    try:
        return load(cls, env)
    except SettingsError as exc:
        _exit(process, exc)


def _exit(process: str, exc: SettingsError) -> NoReturn:
    print(f"{process}: {exc}", file=sys.stderr)
    raise SystemExit(2)


def _normalise(value: str, hint: object) -> str:
    """Booleans take true/false, 1/0, yes/no, on/off (any case); log levels any case."""
    value = value.strip()
    if hint is bool:
        lowered = value.lower()
        return "true" if lowered in _TRUE else "false" if lowered in _FALSE else value
    if hint is LogLevel or typing.get_origin(hint) is Literal:
        return value.upper()
    return value


def _explain(exc: msgspec.ValidationError, raw: Mapping[str, str], hints: dict[str, object]) -> str:
    message, _, where = str(exc).rpartition(" - at `$.")
    name = where.rstrip("`")
    if name not in raw:
        return str(exc)
    hint = hints[name]
    if hint is bool:
        expected = "a boolean (true/false, 1/0, yes/no, on/off)"
    elif typing.get_origin(hint) is Literal:
        expected = "one of " + ", ".join(map(str, typing.get_args(hint)))
    else:
        # msgspec says "Expected `int` >= 1" or "Expected `float`, got `str`".
        expected = message.removeprefix("Expected ").split(", got ")[0]
        expected = expected.replace("`int`", "an integer").replace("`float`", "a number")
    return f"{name.upper()}={raw[name]!r}: expected {expected}"
