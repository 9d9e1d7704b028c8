"""The simulator's settings, read once from the environment at the edge."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)  # no slots: from_env reads the class defaults
class SimSettings:
    host: str = "127.0.0.1"
    port: int = 8090
    api_key: str = field(default="sim-key", repr=False)
    log_level: str = "INFO"
    # How often timeouts are checked; E2B checks its expiry index every 50 ms.
    tick_seconds: float = 0.2
    # Delivery: the docs' draft says up to 3 retries 10 s apart; the per-attempt timeout is
    # unconfirmed, so it is a setting.
    webhook_retries: int = 3
    webhook_retry_delay_seconds: float = 10.0
    webhook_timeout_seconds: float = 5.0
    # Seeds the fault dice so a failing test run can be replayed.
    seed: int | None = None
    # E2B's maximum instance length (24 h on Pro, 1 h on Hobby): no run of a sandbox lasts
    # longer, and a create, connect or resume timeout above it is refused.
    max_instance_seconds: int = 86_400
    # E2B's rate limit on its REST API, per team: 20,000 requests / 30 s (0: no limit). The
    # burst is that whole 30 s allowance: E2B states its limit as a count per 30 s, which a
    # team may spend at once, so the bucket refuses nothing such a window would allow from a
    # standing start and keeps the same long-run rate. Tests that want to meet the limit set
    # both small.
    rate_limit_per_second: float = 20_000 / 30
    rate_limit_burst: int = 20_000

    def __post_init__(self) -> None:
        if self.max_instance_seconds < 1:
            raise ValueError(
                f"E2B_SIM_MAX_INSTANCE_SECONDS must be at least 1, got {self.max_instance_seconds}"
            )
        if self.rate_limit_per_second < 0:
            raise ValueError(
                "E2B_SIM_RATE_LIMIT_PER_SECOND must be at least 0 (0: no limit), "
                f"got {self.rate_limit_per_second}"
            )
        if self.rate_limit_burst < 1:
            raise ValueError(
                f"E2B_SIM_RATE_LIMIT_BURST must be at least 1, got {self.rate_limit_burst}"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SimSettings:
        env = os.environ if env is None else env

        def get(name: str, default: str) -> str:
            return env.get(f"E2B_SIM_{name}", default)

        seed = get("SEED", "")
        return cls(
            host=get("HOST", cls.host),
            port=int(get("PORT", str(cls.port))),
            api_key=get("API_KEY", "sim-key"),
            log_level=env.get("LOG_LEVEL", cls.log_level),
            tick_seconds=float(get("TICK_SECONDS", str(cls.tick_seconds))),
            webhook_retries=int(get("WEBHOOK_RETRIES", str(cls.webhook_retries))),
            webhook_retry_delay_seconds=float(
                get("WEBHOOK_RETRY_DELAY_SECONDS", str(cls.webhook_retry_delay_seconds))
            ),
            webhook_timeout_seconds=float(
                get("WEBHOOK_TIMEOUT_SECONDS", str(cls.webhook_timeout_seconds))
            ),
            seed=int(seed) if seed else None,
            max_instance_seconds=int(get("MAX_INSTANCE_SECONDS", str(cls.max_instance_seconds))),
            rate_limit_per_second=float(
                get("RATE_LIMIT_PER_SECOND", str(cls.rate_limit_per_second))
            ),
            rate_limit_burst=int(get("RATE_LIMIT_BURST", str(cls.rate_limit_burst))),
        )
