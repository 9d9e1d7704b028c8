"""A sandbox's demand replayed under an idle rule: when it would have been paused, how long it
would have run, and who would have waited for a resume.

The rule pauses a sandbox at its idle deadline (the last use plus the timeout), or at the
checker's first tick after it (the seed's 2-minute cron, our ENFORCER_SCHEDULE); the next use
resumes it. A pause whose next use comes within `regret_seconds` is a regret: the user came
back almost at once and waited for the resume. Only time inside [start, end) is counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

from sandbox_common.whatif.trace import Trace

GIB_MB = 1024


@dataclass(frozen=True, slots=True)
class IdleRule:
    """`timeout` None: never paused for idleness (no enforcement, or neverPause)."""

    timeout: float | None
    tick: float = 0.0

    def pause_at(self, last_use: float) -> float:
        if self.timeout is None:
            return math.inf
        deadline = last_use + self.timeout
        return math.ceil(deadline / self.tick) * self.tick if self.tick > 0 else deadline


@dataclass(frozen=True, slots=True)
class Prices:
    """What a running second costs (E2B's published prices in USD are the settings' defaults);
    a paused sandbox costs nothing to run."""

    vcpu_second: float
    gib_second: float

    def per_second(self, vcpus: int, memory_mb: int) -> float:
        return vcpus * self.vcpu_second + memory_mb / GIB_MB * self.gib_second


@dataclass(frozen=True, slots=True)
class Frame:
    """What is counted: time inside [start, end) in epoch seconds (`end` also stands for "now"
    for a sandbox still alive at the end of the data), a return within `regret_seconds` of a
    pause is a regret, and running time costs `prices`."""

    start: float
    end: float
    regret_seconds: float
    prices: Prices


@dataclass(slots=True)
class Figures:
    sandboxes: int = 0
    running_seconds: float = 0.0
    paused_seconds: float = 0.0
    pauses: int = 0
    regrets: int = 0
    # A user came back to a paused sandbox and waited for its resume.
    returns_to_paused: int = 0
    cost: float = 0.0

    def add(self, other: Figures) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    @property
    def regret_rate(self) -> float:
        return self.regrets / self.pauses if self.pauses else 0.0


def replay(trace: Trace, rule: IdleRule, frame: Frame) -> Figures:
    start, end, regret_seconds = frame.start, frame.end, frame.regret_seconds
    out = Figures(sandboxes=1)
    moments = trace.moments()
    if not moments or moments[0] >= end:
        return out
    stop_all = min(trace.ended_at, end) if trace.ended_at is not None else end
    running = paused = 0.0
    for i, used in enumerate(moments):
        returned = i + 1 < len(moments)
        following = moments[i + 1] if returned else stop_all
        pause = rule.pause_at(used)
        if pause < following:
            running += _inside(used, pause, start, end)
            paused += _inside(pause, following, start, end)
            if start <= pause < end:
                out.pauses += 1
                if returned:
                    out.returns_to_paused += 1
                    if following - pause <= regret_seconds:
                        out.regrets += 1
        else:
            running += _inside(used, following, start, end)
    out.running_seconds, out.paused_seconds = running, paused
    out.cost = running * frame.prices.per_second(*trace.size)
    return out


def _inside(a: float, b: float, start: float, end: float) -> float:
    return max(0.0, min(b, end) - max(a, start))
