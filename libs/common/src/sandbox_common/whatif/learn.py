"""The adaptive idle timeout: from a project's demand, the shortest timeout whose regret rate
(pauses the user undid within the regret window, per pause) stays at or under the target, never
outside the policy's bounds.

Each gap between two uses of a sandbox is one chance to pause: a timeout T pauses in every gap
longer than T, and regrets it when the gap ended with the user's return within the regret
window of the pause (T < gap <= T + window). The rate only changes where T crosses a gap or a
gap less the window, so those points (and the bounds) are the only candidates to try; the
shortest one that meets the target is chosen. Pausing later is always safe, so too little data,
or a target no timeout within the bounds meets, gives the upper bound.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sandbox_common.policies.model import AdaptiveIdle, LearnedIdle
from sandbox_common.whatif.trace import Trace

# Fewer gaps than this say too little about a project's habits to shorten its timeout.
MIN_GAPS = 30


@dataclass(frozen=True, slots=True)
class Gaps:
    """Sorted lengths of the gaps that ended with a return, and of those that did not (the
    time from a sandbox's last use to its end, or to the end of the data)."""

    returned: list[float]
    open_ended: list[float]

    @classmethod
    def of(cls, traces: Iterable[Trace], until: float) -> Gaps:
        returned: list[float] = []
        open_ended: list[float] = []
        for trace in traces:
            moments = trace.moments()
            returned.extend(b - a for a, b in itertools.pairwise(moments))
            if moments:
                stop = trace.ended_at if trace.ended_at is not None else until
                open_ended.append(max(0.0, stop - moments[-1]))
        return cls(sorted(returned), sorted(open_ended))

    def __len__(self) -> int:
        return len(self.returned) + len(self.open_ended)

    def pauses(self, timeout: float) -> int:
        return _longer(self.returned, timeout) + _longer(self.open_ended, timeout)

    def regrets(self, timeout: float, window: float) -> int:
        return _longer(self.returned, timeout) - _longer(self.returned, timeout + window)

    def rate(self, timeout: float, window: float) -> float:
        pauses = self.pauses(timeout)
        return self.regrets(timeout, window) / pauses if pauses else 0.0


@dataclass(frozen=True, slots=True)
class Bounds:
    """The adaptive rule of a policy: a timeout within [low, high] seconds whose regret rate
    (a return within `window` seconds of the pause, per pause) is at most `target`."""

    low: int
    high: int
    target: float
    window: float


@dataclass(frozen=True, slots=True)
class Learned:
    seconds: int
    gaps: int
    pauses: int
    regrets: int
    why: str

    @property
    def regret_rate(self) -> float:
        return self.regrets / self.pauses if self.pauses else 0.0


def learn_timeout(gaps: Gaps, bounds: Bounds, min_gaps: int = MIN_GAPS) -> Learned:
    low, high, target, window = bounds.low, bounds.high, bounds.target, bounds.window
    if len(gaps) < min_gaps:
        return _at(gaps, high, window, f"too little data ({len(gaps)} gaps, {min_gaps} needed)")
    # In whole seconds the rate changes only where T reaches a gap (no longer paused in it) or
    # a gap less the window (no longer regretted).
    candidates = {low, high}
    for g in gaps.returned:
        for point in (math.ceil(g), math.ceil(g - window)):
            if low < point < high:
                candidates.add(point)
    for seconds in sorted(candidates):
        if gaps.rate(seconds, window) <= target:
            return _at(gaps, seconds, window, "the shortest timeout that meets the target")
    return _at(gaps, high, window, "no timeout within the bounds meets the target")


def _at(gaps: Gaps, seconds: int, window: float, why: str) -> Learned:
    return Learned(
        seconds=seconds,
        gaps=len(gaps),
        pauses=gaps.pauses(seconds),
        regrets=gaps.regrets(seconds, window),
        why=why,
    )


def _longer(sorted_lengths: list[float], than: float) -> int:
    return len(sorted_lengths) - bisect.bisect_right(sorted_lengths, than)


def learn_idle(
    idle: AdaptiveIdle, gaps: Gaps, window: float, since: datetime, at: datetime
) -> LearnedIdle:
    """What an adaptive rule learns from `gaps` (seen from `since` to `at`), as GET
    .../policy shows it."""
    bounds = Bounds(idle.min_seconds, idle.max_seconds, idle.target_regret, window)
    learned = learn_timeout(gaps, bounds)
    return LearnedIdle(
        seconds=learned.seconds,
        at=at,
        since=since,
        gaps=learned.gaps,
        pauses=learned.pauses,
        regrets=learned.regrets,
        why=learned.why,
    )
