"""When the enforcer ticks: a 5-field cron expression or an interval such as `5s` / `2m`.

`next_after(now)` is always computed from the current time, never from the last planned tick,
so ticks missed during an outage coalesce into one run instead of firing in a burst (the seed's
Inngest cron did burst). Interval ticks are aligned to the epoch so every replica agrees on the
tick boundaries.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from croniter import CroniterBadCronError, croniter

_INTERVAL = re.compile(r"^\s*(\d+)\s*(s|m|h)\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}


class ScheduleError(ValueError):
    """A schedule (ENFORCER_SCHEDULE, RECONCILER_SCHEDULE) that is neither a 5-field cron
    expression nor an interval like `5s`."""


@dataclass(frozen=True)
class Schedule:
    expression: str
    interval: timedelta | None = None

    def next_after(self, moment: datetime) -> datetime:
        """The first tick strictly after `moment` (UTC)."""
        moment = moment.astimezone(UTC)
        if self.interval is not None:
            step = self.interval.total_seconds()
            ticks = int(moment.timestamp() // step) + 1
            return datetime.fromtimestamp(ticks * step, UTC)
        nxt: datetime = croniter(self.expression, moment).get_next(datetime)
        return nxt.astimezone(UTC)


def parse_schedule(text: str, variable: str = "ENFORCER_SCHEDULE") -> Schedule:
    match = _INTERVAL.match(text)
    if match:
        seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        if seconds <= 0:
            raise ScheduleError(f"{variable}={text!r}: an interval must be positive")
        return Schedule(text.strip(), timedelta(seconds=seconds))
    fields = text.split()
    if len(fields) != 5:
        raise ScheduleError(
            f"{variable}={text!r}: expected a 5-field cron expression or an interval such as '5s'"
        )
    try:
        croniter(text)
    except (CroniterBadCronError, ValueError, KeyError) as exc:
        raise ScheduleError(f"{variable}={text!r}: {exc}") from exc
    return Schedule(" ".join(fields))
