"""When a pre-warm is due: each expected return (a `times` entry on one of `days`, in the
policy's own time zone, daylight saving included) less the lead. Pure: the caller gives the
times."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from sandbox_common.policies.model import DAYS, Prewarm


def returns_between(prewarm: Prewarm, since: datetime, until: datetime) -> list[datetime]:
    """The expected returns (UTC) whose pre-warm moment (the return less the lead) falls in
    (since, until], oldest first."""
    lead = timedelta(seconds=prewarm.lead_seconds)
    zone = prewarm.zone
    first = (since + lead).astimezone(zone).date() - timedelta(days=1)
    last = (until + lead).astimezone(zone).date() + timedelta(days=1)
    found = []
    day = first
    while day <= last:
        if DAYS[day.weekday()] in prewarm.days:
            for text in sorted(prewarm.times):
                hours, minutes = text.split(":")
                back = datetime.combine(day, time(int(hours), int(minutes)), zone).astimezone(UTC)
                if since < back - lead <= until:
                    found.append(back)
        day += timedelta(days=1)
    return found
