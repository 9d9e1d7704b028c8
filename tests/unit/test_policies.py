"""Lifecycle policies (issue 17): the shape and its errors, the policy in force and where each
value comes from, quiet-hours windows in their own time zone."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sandbox_common.policies import (
    Layers,
    Level,
    Policy,
    PolicyError,
    QuietHours,
    decode_policy,
    encode_policy,
    explain,
    resolve,
)
from sandbox_common.policies.quiet_hours import next_opening, open_window, window_on

SETTING = Policy(idle_timeout_seconds=180, warn_before_seconds=30)


def _decode(body: Any) -> Policy:
    return decode_policy(json.dumps(body).encode())


def test_a_whole_policy_round_trips_in_camel_case() -> None:
    body = {
        "idleTimeoutSeconds": 600,
        "neverPause": False,
        "maxLifetimeSeconds": 8 * 3600,
        "quietHours": {
            "start": "22:00",
            "end": "06:00",
            "timezone": "Europe/Paris",
            "days": ["mon", "fri"],
        },
        "deleteAfterPausedSeconds": 7 * 86_400,
        "warnBeforeSeconds": 60,
    }
    policy = _decode(body)
    assert policy.quiet_hours is not None
    assert policy.quiet_hours.days == ["mon", "fri"]
    assert json.loads(encode_policy(policy)) == body
    assert _decode({}) == Policy()  # nothing set: every field inherited


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"idleTimeoutSeconds": 5}, "idleTimeoutSeconds"),
        ({"idleTimeoutSeconds": "600"}, "idleTimeoutSeconds"),
        ({"neverPause": "yes"}, "neverPause"),
        ({"maxLifetimeSeconds": 59}, "maxLifetimeSeconds"),
        ({"deleteAfterPausedSeconds": -1}, "deleteAfterPausedSeconds"),
        ({"warnBeforeSeconds": 3601}, "warnBeforeSeconds"),
        ({"idleTimeout": 600}, "idleTimeout"),
        ({"quietHours": {"start": "24:00", "end": "06:00", "timezone": "UTC"}}, "quietHours.start"),
        ({"quietHours": {"start": "22:00", "end": "22:00", "timezone": "UTC"}}, "quietHours.end"),
        (
            {"quietHours": {"start": "22:00", "end": "06:00", "timezone": "Mars/Olympus"}},
            "quietHours.timezone",
        ),
        (
            {"quietHours": {"start": "22:00", "end": "6:00", "timezone": "UTC", "days": []}},
            "quietHours.end",
        ),
        (
            {"quietHours": {"start": "22:00", "end": "06:00", "timezone": "UTC", "days": []}},
            "quietHours.days",
        ),
        (
            {
                "quietHours": {
                    "start": "22:00",
                    "end": "06:00",
                    "timezone": "UTC",
                    "days": ["mon", "mon"],
                }
            },
            "quietHours.days",
        ),
        ({"quietHours": {"start": "22:00", "end": "06:00"}}, "quietHours"),
        ({"idle": {"mode": "adaptive", "minSeconds": 600, "maxSeconds": 60}}, "idle.maxSeconds"),
        ({"idle": {"mode": "learned", "minSeconds": 60, "maxSeconds": 600}}, "idle.mode"),
        (
            {"idle": {"mode": "adaptive", "minSeconds": 60, "maxSeconds": 600, "targetRegret": 2}},
            "idle.targetRegret",
        ),
        ({"idle": {"mode": "adaptive", "minSeconds": 5, "maxSeconds": 600}}, "idle.minSeconds"),
        (
            {"quietHours": {"start": "22:00", "end": "06:00", "timezone": "UTC", "x": 1}},
            "quietHours.x",
        ),
    ],
)
def test_an_invalid_value_is_refused_naming_its_field(body: Any, field: str) -> None:
    with pytest.raises(PolicyError) as refused:
        _decode(body)
    assert refused.value.field == field, refused.value


@pytest.mark.parametrize("raw", [b"[1]", b"{", b"null", b""])
def test_a_body_that_is_not_an_object_is_refused(raw: bytes) -> None:
    with pytest.raises(PolicyError) as refused:
        decode_policy(raw)
    assert refused.value.field == ""


def test_each_value_comes_from_the_first_level_that_sets_it() -> None:
    layers = Layers(
        setting=SETTING,
        default=Policy(idle_timeout_seconds=300, never_pause=False, warn_before_seconds=45),
        project=Policy(idle_timeout_seconds=900, max_lifetime_seconds=3600),
        sandbox_metadata={"idleTimeoutSeconds": "1200"},
    )
    found = explain(layers)
    assert (found["idleTimeoutSeconds"].value, found["idleTimeoutSeconds"].source) == (
        1200,
        Level.SANDBOX,
    )
    assert found["maxLifetimeSeconds"].source is Level.PROJECT
    assert (found["neverPause"].value, found["neverPause"].source) == (False, Level.DEFAULT)
    assert (found["warnBeforeSeconds"].value, found["warnBeforeSeconds"].source) == (
        45,
        Level.DEFAULT,
    )
    assert (found["quietHours"].value, found["quietHours"].source) == (None, Level.SETTING)
    policy = resolve(layers)
    assert (policy.idle_timeout_seconds, policy.max_lifetime_seconds) == (1200, 3600)
    assert (policy.never_pause, policy.warn_before_seconds) == (False, 45)


@pytest.mark.parametrize("raw", ["abc", "5", str(8 * 86_400), "", "600.5"])
def test_a_sandbox_override_out_of_bounds_or_unreadable_is_ignored(raw: str) -> None:
    layers = Layers(setting=SETTING, project=Policy(idle_timeout_seconds=900))
    found = explain(Layers(layers.setting, None, layers.project, {"idleTimeoutSeconds": raw}))
    assert (found["idleTimeoutSeconds"].value, found["idleTimeoutSeconds"].source) == (
        900,
        Level.PROJECT,
    )


def test_without_policies_the_settings_decide() -> None:
    assert resolve(Layers(setting=SETTING)) == SETTING
    assert {v.source for v in explain(Layers(setting=SETTING)).values()} == {Level.SETTING}


NIGHTS = QuietHours(start="22:00", end="06:00", timezone="Europe/Paris", days=["mon", "tue"])


def _paris(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def test_a_window_past_midnight_belongs_to_the_day_it_starts_on() -> None:
    # Monday 2026-12-07, Paris is UTC+1 in winter.
    assert window_on(NIGHTS, datetime(2026, 12, 7).date()) == (
        _paris("2026-12-07T22:00:00+01:00"),
        _paris("2026-12-08T06:00:00+01:00"),
    )
    assert window_on(NIGHTS, datetime(2026, 12, 9).date()) is None  # a Wednesday
    assert open_window(NIGHTS, _paris("2026-12-08T05:59:00+01:00")) is not None  # Monday's
    assert open_window(NIGHTS, _paris("2026-12-09T05:00:00+01:00")) is not None  # Tuesday's
    assert open_window(NIGHTS, _paris("2026-12-10T05:00:00+01:00")) is None  # no Wednesday
    assert open_window(NIGHTS, _paris("2026-12-08T06:00:00+01:00")) is None  # end: closed
    assert next_opening(NIGHTS, _paris("2026-12-08T23:00:00+01:00")) == _paris(
        "2026-12-14T22:00:00+01:00"
    )


def test_windows_follow_daylight_saving_time() -> None:
    summer = QuietHours(start="22:00", end="06:00", timezone="Europe/Paris")
    # Sunday 2027-03-28 02:00 Paris clocks go forward: that night lasts 7 hours, not 8.
    opens, closes = window_on(summer, datetime(2027, 3, 27).date()) or (None, None)
    assert opens == _paris("2027-03-27T22:00:00+01:00")
    assert closes == _paris("2027-03-28T06:00:00+02:00")
    assert closes - opens == timedelta(hours=7)


@given(
    moment=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
    ),
    start=st.sampled_from(["00:00", "06:30", "22:00", "23:59"]),
    end=st.sampled_from(["00:01", "06:00", "12:00", "22:30"]),
    zone=st.sampled_from(["UTC", "Europe/Paris", "America/New_York", "Asia/Kolkata"]),
    days=st.lists(st.sampled_from(["mon", "wed", "sat", "sun"]), min_size=1, unique=True),
)
def test_the_next_opening_is_later_and_opens_a_window(
    moment: datetime, start: str, end: str, zone: str, days: list[Any]
) -> None:
    quiet = QuietHours(start=start, end=end, timezone=zone, days=days)
    opening = next_opening(quiet, moment)
    assert moment < opening <= moment + timedelta(days=8)
    window = open_window(quiet, opening)
    assert window is not None
    assert window[0] == opening
    current = open_window(quiet, moment)
    if current is not None:
        assert current[0] <= moment < current[1]


ADAPTIVE = {"mode": "adaptive", "minSeconds": 60, "maxSeconds": 900, "targetRegret": 0.1}
LEARNED = {
    "seconds": 240,
    "at": "2026-12-03T10:00:00+00:00",
    "since": "2026-11-19T10:00:00+00:00",
    "gaps": 1200,
    "pauses": 80,
    "regrets": 6,
    "why": "the shortest timeout that meets the target",
}


def test_an_adaptive_rule_gives_its_upper_bound_until_a_value_is_learned() -> None:
    waiting = _decode({"idle": ADAPTIVE})
    assert waiting.idle is not None
    assert waiting.idle.target_regret == 0.1
    assert waiting.idle_seconds() == 900
    learned = _decode({"idle": {**ADAPTIVE, "learned": LEARNED}})
    assert learned.idle_seconds() == 240
    assert json.loads(encode_policy(learned))["idle"]["learned"]["seconds"] == 240
    # Bounds narrowed after the value was learned: the value is kept inside them.
    narrowed = _decode({"idle": {**ADAPTIVE, "minSeconds": 300, "learned": LEARNED}})
    assert narrowed.idle_seconds() == 300


def test_the_adaptive_rule_and_its_timeout_come_from_one_level() -> None:
    adaptive = _decode({"idle": {**ADAPTIVE, "learned": LEARNED}, "idleTimeoutSeconds": 600})
    found = explain(Layers(setting=SETTING, default=adaptive))
    # At its own level the learned value takes the place of idleTimeoutSeconds.
    assert (found["idleTimeoutSeconds"].value, found["idleTimeoutSeconds"].source) == (
        240,
        Level.DEFAULT,
    )
    assert found["idle"].source is Level.DEFAULT
    assert resolve(Layers(setting=SETTING, default=adaptive)).idle_seconds() == 240
    # A project's fixed timeout wins over the default's adaptive rule, which then is not shown.
    fixed = Layers(setting=SETTING, default=adaptive, project=Policy(idle_timeout_seconds=120))
    found = explain(fixed)
    assert (found["idleTimeoutSeconds"].value, found["idle"].value) == (120, None)
    assert found["idle"].source is Level.PROJECT
    assert resolve(fixed).idle_seconds() == 120
