"""A lifecycle policy as the API, the CLI and the policy facts carry it (JSON, camelCase).

Every field may be left out (null): the level does not set it, and the level below decides
(sandbox metadata > project > default > setting, see effective.py). Checked once, where it
enters (`decode_policy`): a value out of range, an unknown field, an unknown time zone or day,
a quiet-hours window of no length, each is refused with the field's path, so an API can answer
422 naming it. Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec

# The bounds of an idle timeout (the same as a sandbox's metadata override, deadlines.py).
MIN_IDLE_SECONDS, MAX_IDLE_SECONDS = 10, 7 * 86_400
DAY = 86_400

IdleSeconds = Annotated[int, msgspec.Meta(ge=MIN_IDLE_SECONDS, le=MAX_IDLE_SECONDS)]
# A maximum running time: a minute up to 30 days (E2B's own maximum is lower on every plan).
RunningSeconds = Annotated[int, msgspec.Meta(ge=60, le=30 * DAY)]
# Paused this long, then deleted (E2B kill): a minute up to a year.
PausedSeconds = Annotated[int, msgspec.Meta(ge=60, le=365 * DAY)]
# A warning at most an hour ahead; 0: no warning.
WarnSeconds = Annotated[int, msgspec.Meta(ge=0, le=3_600)]
ClockTime = Annotated[str, msgspec.Meta(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
DAYS: tuple[Day, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class PolicyError(ValueError):
    """A policy that cannot be taken: `field` is its JSON path (`quietHours.timezone`)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}" if field else reason)
        self.field = field
        self.reason = reason


def _zone_or_error(name: str) -> None:
    """ "timezone: ..." (decode_policy puts it into the path it reports)."""
    try:
        ZoneInfo(name)
    # OSError: a name longer than a file name may be (zoneinfo looks for a file of it).
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"timezone: unknown time zone {name!r}") from exc


class QuietHours(
    msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True
):
    """Every `days` from `start` to `end` local time in `timezone`, sandboxes are paused even if
    active, and keep-alive does not hold them. A window past midnight (22:00-06:00) belongs to
    the day it starts on."""

    start: ClockTime
    end: ClockTime
    timezone: str
    days: Annotated[list[Day], msgspec.Meta(min_length=1, max_length=7)] = msgspec.field(
        default_factory=lambda: list(DAYS)
    )

    def __post_init__(self) -> None:
        # "<field>: reason": decode_policy puts the field into the path it reports.
        if self.start == self.end:
            raise ValueError("end: the same time as start, a window of no length")
        if len(set(self.days)) != len(self.days):
            raise ValueError("days: a day is given twice")
        _zone_or_error(self.timezone)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class Prewarm(
    msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True
):
    """Users come back at known times (`times`, local `HH:MM` in `timezone`, on `days`: the
    cron `M H * * days` in that zone): `leadSeconds` before each, the project's PAUSED
    sandboxes are resumed, so the user finds them RUNNING. If nobody comes, the idle rule pauses
    them again. `budgetMinutesPerDay` caps the sandbox-minutes pre-warming may spend a day (each
    pre-warm counts the lead plus the idle timeout, what it runs if nobody comes)."""

    times: Annotated[list[ClockTime], msgspec.Meta(min_length=1, max_length=24)]
    timezone: str
    days: Annotated[list[Day], msgspec.Meta(min_length=1, max_length=7)] = msgspec.field(
        default_factory=lambda: list(DAYS)
    )
    lead_seconds: Annotated[int, msgspec.Meta(ge=0, le=3600)] = 300
    budget_minutes_per_day: Annotated[int, msgspec.Meta(ge=1, le=1440 * 100)] = 60

    def __post_init__(self) -> None:
        if len(set(self.times)) != len(self.times):
            raise ValueError("times: a time is given twice")
        if len(set(self.days)) != len(self.days):
            raise ValueError("days: a day is given twice")
        _zone_or_error(self.timezone)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class LearnedIdle(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """What the adaptive rule chose and from what: set by the learner (enforcer/learner), never
    by a client; shown in GET .../policy. The data: `gaps` between uses of the project's
    sandboxes from `since` to `at`, of which `pauses` the chosen timeout would have paused and
    `regrets` the user undid within the regret window."""

    seconds: IdleSeconds
    at: datetime
    since: datetime
    gaps: int
    pauses: int
    regrets: int
    why: str


class AdaptiveIdle(
    msgspec.Struct, frozen=True, kw_only=True, rename="camel", forbid_unknown_fields=True
):
    """An idle timeout learned from the project's own history: the shortest within
    [minSeconds, maxSeconds] whose regret rate (pauses the user undid soon, per pause) stays at
    or under `targetRegret`. Until a value is learned, sandboxes get maxSeconds. At its level it
    takes the place of idleTimeoutSeconds."""

    mode: Literal["adaptive"]
    min_seconds: IdleSeconds
    max_seconds: IdleSeconds
    target_regret: Annotated[float, msgspec.Meta(ge=0, le=1)] = 0.05
    learned: LearnedIdle | None = None

    def __post_init__(self) -> None:
        if self.min_seconds > self.max_seconds:
            raise ValueError("maxSeconds: less than minSeconds")

    @property
    def seconds(self) -> int:
        """The timeout in force: the learned one (kept within the bounds, which may have been
        narrowed since), else the upper bound."""
        if self.learned is None:
            return self.max_seconds
        return min(self.max_seconds, max(self.min_seconds, self.learned.seconds))


class Policy(
    msgspec.Struct,
    frozen=True,
    kw_only=True,
    rename="camel",
    forbid_unknown_fields=True,
    omit_defaults=True,  # the JSON of a level holds the fields it sets, nothing else
):
    idle_timeout_seconds: IdleSeconds | None = None
    never_pause: bool | None = None
    max_lifetime_seconds: RunningSeconds | None = None
    quiet_hours: QuietHours | None = None
    delete_after_paused_seconds: PausedSeconds | None = None
    warn_before_seconds: WarnSeconds | None = None
    idle: AdaptiveIdle | None = None
    prewarm: Prewarm | None = None

    def __post_init__(self) -> None:
        if self.prewarm is not None and self.idle_seconds() is None:
            # A pre-warm that nobody uses runs the lead plus the idle timeout: the budget
            # counts that, so it must be known where the pre-warm is set.
            raise ValueError("prewarm: needs idleTimeoutSeconds or idle in the same policy")

    def idle_seconds(self) -> int | None:
        """The idle timeout this level gives: its adaptive rule's, else idleTimeoutSeconds."""
        return self.idle.seconds if self.idle is not None else self.idle_timeout_seconds

    def fields_set(self) -> dict[str, object]:
        """The fields this level sets, by their JSON name."""
        return {
            name: value
            for name, value in zip(
                self.__struct_encode_fields__, msgspec.structs.astuple(self), strict=True
            )
            if value is not None
        }


# JSON name of each field, for effective values and messages.
FIELDS: tuple[str, ...] = Policy.__struct_encode_fields__

_decoder = msgspec.json.Decoder(Policy)
_encoder = msgspec.json.Encoder()
# msgspec says "... - at `$.quietHours.timezone`": the path becomes the field.
_OWN = re.compile(r"^(?P<field>[a-z][A-Za-z]*): (?P<reason>.*)$", re.DOTALL)
_AT = re.compile(r"^(?P<reason>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)


def decode_policy(body: bytes) -> Policy:
    """Raises PolicyError naming the field at fault."""
    return decode_named(_decoder, body, PolicyError)


_T = TypeVar("_T")


def decode_named(
    decoder: msgspec.json.Decoder[_T], body: bytes, error: Callable[[str, str], Exception]
) -> _T:
    """`body` decoded, or `error(field, reason)` raised: the JSON path of the value at fault
    ("" for the body as a whole) and why, in words a client can act on."""
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        match = _AT.match(str(exc))
        assert match is not None  # the pattern matches any text
        path = (match["path"] or "").lstrip(".").replace("[", ".").replace("]", "")
        reason = match["reason"]
        own = _OWN.match(reason)
        if own is not None:  # a check of the struct's own (__post_init__)
            path, reason = ".".join(p for p in (path, own["field"]) if p), own["reason"]
        elif reason.startswith("Object contains unknown field"):
            unknown = reason.split("`")[1] if "`" in reason else ""
            path, reason = ".".join(p for p in (path, unknown) if p), "unknown field"
        raise error(path, reason) from exc
    except msgspec.DecodeError as exc:
        raise error("", f"not a JSON object: {exc}") from exc
    except UnicodeDecodeError as exc:  # msgspec's answer to invalid UTF-8 inside a string
        raise error("", f"not valid UTF-8: {exc.reason} at byte {exc.start}") from exc


def encode_policy(policy: Policy) -> bytes:
    return _encoder.encode(policy)
