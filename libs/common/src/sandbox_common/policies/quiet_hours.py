"""When a quiet-hours window is open, and when the next one opens, in the window's own time
zone (daylight saving included). Pure: the caller gives the time."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from sandbox_common.policies.model import DAYS, QuietHours

# A window opens at most a week after any moment (at least one day is given).
_SEARCH_DAYS = 8


def window_on(quiet: QuietHours, day: date) -> tuple[datetime, datetime] | None:
    """The window that starts on local `day` (UTC times), if that day is one of its days."""
    if DAYS[day.weekday()] not in quiet.days:
        return None
    zone = quiet.zone
    start, end = _clock(quiet.start), _clock(quiet.end)
    opens = datetime.combine(day, start, zone)
    closes = datetime.combine(day + timedelta(days=1) if end <= start else day, end, zone)
    return opens.astimezone(UTC), closes.astimezone(UTC)


def open_window(quiet: QuietHours, now: datetime) -> tuple[datetime, datetime] | None:
    """The window `now` is in, if any (a window past midnight may have started yesterday)."""
    today = now.astimezone(quiet.zone).date()
    for day in (today - timedelta(days=1), today):
        window = window_on(quiet, day)
        if window is not None and window[0] <= now < window[1]:
            return window
    return None


def next_opening(quiet: QuietHours, now: datetime) -> datetime:
    """When the next window opens, strictly after `now`."""
    today = now.astimezone(quiet.zone).date()
    for offset in range(_SEARCH_DAYS + 1):
        window = window_on(quiet, today + timedelta(days=offset))
        if window is not None and window[0] > now:
            return window[0]
    raise AssertionError("a quiet-hours window has at least one day a week")  # pragma: no cover


def _clock(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))
