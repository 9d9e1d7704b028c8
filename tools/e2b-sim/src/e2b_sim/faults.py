"""Fault knobs: what a hostile but documented E2B can do to its clients.

Set at start from E2B_SIM_<NAME> (e.g. E2B_SIM_DROP_PROBABILITY=0.2) and changed at run time
with PATCH /_sim/faults (camelCase names, e.g. {"dropProbability": 0.2}).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Annotated, Any

import msgspec

Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
NonNegative = Annotated[int, msgspec.Meta(ge=0)]


class Faults(msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True):
    # Webhook deliveries (per event and registration).
    duplicate_probability: Probability = 0.0  # send the same event twice (same body id)
    drop_probability: Probability = 0.0  # never send it (E2B publishes fire-and-forget)
    reorder_window: NonNegative = 0  # hold back up to this many deliveries, send them shuffled
    reorder_hold_ms: NonNegative = 300  # ... or whatever gathered within this time
    delivery_delay_ms: NonNegative = 0  # every delivery goes out this much later
    # Pause calls: `pause_status` answers instead of pausing, for the next `pause_status_count`
    # calls and after that with `pause_status_probability`.
    pause_status: Annotated[int, msgspec.Meta(ge=400, le=599)] | None = None
    pause_status_count: NonNegative = 0
    pause_status_probability: Probability = 0.0
    # The Retry-After (seconds) of those answers when they are 429s; None: no header.
    retry_after_seconds: NonNegative | None = None
    pause_latency_ms: NonNegative = 0  # extra time before a pause is answered
    # Pause and kill take this long (pausing / killing): 409 "cannot be paused while in ...".
    transition_ms: NonNegative = 0


def faults_from_env(env: Mapping[str, str]) -> Faults:
    values: dict[str, Any] = {}
    for name, camel in zip(Faults.__struct_fields__, Faults.__struct_encode_fields__, strict=True):
        raw = env.get(f"E2B_SIM_{name.upper()}")
        if raw:
            values[camel] = msgspec.json.decode(raw)  # numbers as JSON: 0.2, 3, 500
    return msgspec.convert(values, Faults)


class FaultBox:
    """The current knobs and the dice they are rolled with."""

    def __init__(self, initial: Faults, seed: int | None) -> None:
        self.initial = initial
        self.current = initial
        self.rng = random.Random(seed)  # noqa: S311 - fault dice, not security
        self._count_left = initial.pause_status_count

    def update(self, patch: dict[str, Any]) -> Faults:
        """Raises msgspec.ValidationError on an unknown knob or a value out of range."""
        merged = {**msgspec.to_builtins(self.current), **patch}
        self.current = msgspec.convert(merged, Faults)
        if "pauseStatusCount" in patch or "pauseStatus" in patch:
            self._count_left = self.current.pause_status_count
        return self.current

    def reset(self) -> None:
        self.current = self.initial
        self._count_left = self.initial.pause_status_count

    def roll(self, probability: float) -> bool:
        return probability > 0 and self.rng.random() < probability

    def pause_injection(self) -> int | None:
        """The status to answer a pause with instead of pausing, or None to pause for real."""
        status = self.current.pause_status
        if status is None:
            return None
        if self._count_left > 0:
            self._count_left -= 1
            return status
        return status if self.roll(self.current.pause_status_probability) else None
