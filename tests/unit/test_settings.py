"""Settings are parsed strictly at start: a typo stops the process with one line naming the
variable, and each process is given only the settings and secrets it uses."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
import uvicorn

from enforcer.actuator.main import main as actuator_main
from enforcer.settings import ActuatorSettings, TickerSettings
from enforcer.ticker.main import main as ticker_main
from ingest.main import main as ingest_main
from ingest.settings import IngestSettings
from projector.main import main as projector_main
from projector.settings import ProjectorSettings
from sandbox_common import serving
from sandbox_common.settings import SettingsError, load
from sandboxctl.settings import Settings
from status_api.main import main as status_api_main
from status_api.settings import StatusApiSettings


@pytest.mark.parametrize(
    ("env", "message"),
    [
        # A typo in a boolean used to mean false: pauses went live during a rollback.
        (
            {"ENFORCER_DRY_RUN": "ture"},
            "ENFORCER_DRY_RUN='ture': expected a boolean (true/false, 1/0, yes/no, on/off)",
        ),
        ({"ENFORCER_BATCH_SIZE": "many"}, "ENFORCER_BATCH_SIZE='many': expected an integer"),
        ({"ENFORCER_BATCH_SIZE": "-5"}, "ENFORCER_BATCH_SIZE='-5': expected an integer >= 1"),
        ({"ENFORCER_PORT": "70000"}, "ENFORCER_PORT='70000': expected an integer <= 65535"),
        ({"E2B_TIMEOUT_SECONDS": "0"}, "E2B_TIMEOUT_SECONDS='0': expected a number > 0.0"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL='LOUD': expected one of DEBUG, INFO, WARNING"),
        ({"ENFORCER_SCHEDULE": "daily"}, "ENFORCER_SCHEDULE='daily': expected a 5-field cron"),
        ({"RECONCILER_SCHEDULE": "0s"}, "RECONCILER_SCHEDULE='0s': an interval must be positive"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError) as refused:
        load(TickerSettings, env)
    assert str(refused.value).startswith(message)
    assert "\n" not in str(refused.value)


def test_the_keep_alive_stays_within_what_e2bs_refresh_accepts() -> None:
    # E2B's refresh takes a duration of at most 3600 s: a bigger keep-alive would be refused by
    # E2B on every heartbeat instead of once, at start.
    env = {"STATUS_API_JWT_SECRET": "s" * 32, "E2B_KEEP_ALIVE_SECONDS": "7200"}
    with pytest.raises(
        SettingsError, match="E2B_KEEP_ALIVE_SECONDS='7200': expected an integer <= 3600"
    ):
        load(StatusApiSettings, env)
    settings = load(StatusApiSettings, env | {"E2B_KEEP_ALIVE_SECONDS": "3600"})
    assert settings.e2b_keep_alive_seconds == 3600


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        *(("true", True), ("TRUE", True), ("1", True), ("yes", True), ("On", True)),
        *(("false", False), ("0", False), ("no", False), ("off", False), (" false ", False)),
    ],
)
def test_booleans_take_the_usual_spellings(raw: str, value: bool) -> None:
    assert load(TickerSettings, {"ENFORCER_DRY_RUN": raw}).enforcer_dry_run is value


def test_an_empty_variable_counts_as_unset() -> None:
    assert load(TickerSettings, {"ENFORCER_BATCH_SIZE": ""}).enforcer_batch_size == 1000


@pytest.mark.parametrize(
    ("cls", "env", "secret"),
    [
        (IngestSettings, {}, "E2B_WEBHOOK_SECRET"),
        (StatusApiSettings, {}, "STATUS_API_JWT_SECRET"),
        (ActuatorSettings, {}, "E2B_API_KEY"),
    ],
)
def test_a_process_does_not_start_without_its_secret(
    cls: type[IngestSettings | StatusApiSettings | ActuatorSettings],
    env: dict[str, str],
    secret: str,
) -> None:
    with pytest.raises(SettingsError, match=f"missing required setting.*{secret}"):
        load(cls, env)


def _fields(cls: type[object]) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]


def test_each_process_is_given_only_what_it_uses() -> None:
    secrets = {"e2b_webhook_secret", "e2b_api_key", "status_api_jwt_secret"}
    assert _fields(IngestSettings) & secrets == {"e2b_webhook_secret"}
    assert _fields(StatusApiSettings) & secrets == {"status_api_jwt_secret"}
    assert _fields(ActuatorSettings) & secrets == {"e2b_api_key"}
    assert _fields(ProjectorSettings) & secrets == set()
    # The ticker runs the reconciler beside it, which lists sandboxes at E2B.
    assert _fields(TickerSettings) & secrets == {"e2b_api_key"}
    assert "database_url" not in _fields(IngestSettings) | _fields(ActuatorSettings)
    assert "idle_timeout_seconds" not in _fields(TickerSettings) | _fields(ActuatorSettings)
    # sandboxctl runs a part of each: it has them all.
    every = set().union(
        *map(
            _fields,
            (
                IngestSettings,
                StatusApiSettings,
                ActuatorSettings,
                ProjectorSettings,
                TickerSettings,
            ),
        )
    )
    assert every == _fields(Settings)


@pytest.mark.parametrize(
    ("main", "process", "env", "variable"),
    [
        (ticker_main, "enforcer", {"ENFORCER_DRY_RUN": "ture"}, "ENFORCER_DRY_RUN"),
        (
            actuator_main,
            "actuator",
            {"E2B_API_KEY": "k", "ACTUATOR_MAX_IN_FLIGHT": "0"},
            "ACTUATOR_MAX_IN_FLIGHT",
        ),
        (projector_main, "projector", {"PROJECTOR_BATCH_SIZE": "ten"}, "PROJECTOR_BATCH_SIZE"),
        (
            ingest_main,
            "ingest",
            {"E2B_WEBHOOK_SECRET": "s" * 32, "INGEST_PORT": "http"},
            "INGEST_PORT",
        ),
        (status_api_main, "status-api", {}, "STATUS_API_JWT_SECRET"),
    ],
)
def test_a_bad_setting_stops_the_start_with_one_line(
    main: Callable[[], None],
    process: str,
    env: dict[str, str],
    variable: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    def started(*args: object, **kwargs: object) -> None:
        raise AssertionError("the server started despite the bad setting")

    monkeypatch.setattr(uvicorn, "run", started)
    monkeypatch.setattr(serving, "serve", started)
    for f in dataclasses.fields(Settings):
        monkeypatch.delenv(f.name.upper(), raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as stopped:
        main()  # never reaches the server: nothing is opened before the settings are good
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{process}: ")
    assert variable in err
    assert err.count("\n") == 1
