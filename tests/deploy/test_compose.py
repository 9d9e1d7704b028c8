"""docker-compose.yml and the Dockerfiles, checked offline (no Docker engine here): the compose
specification's JSON schema (shipped in check-jsonschema) through its real CLI, then what the
schema cannot know: health, start order, environment names our services actually read."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from enforcer.settings import ActuatorSettings, TickerSettings
from ingest.settings import IngestSettings
from projector.settings import ProjectorSettings
from sandboxctl.settings import Settings
from status_api.settings import StatusApiSettings

ROOT = Path(__file__).parents[2]
COMPOSE = ROOT / "docker-compose.yml"
ONE_SHOT = {"init", "register"}
INFRA = {"kafka", "postgres", "redis"}
OURS = {"ingest", "projector", "status-api", "enforcer", "actuator"}
SETTINGS = {f.name.upper() for f in dataclasses.fields(Settings)}
# Read by `sandboxctl topics create` (init), not by Settings.
TOPIC_LAYOUT = {"LIFECYCLE_PARTITIONS", "COMMANDS_PARTITIONS", "DLQ_PARTITIONS"}


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    schema = ["--builtin-schema", "vendor.compose-spec"]
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", *schema, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def test_the_compose_file_satisfies_the_compose_specification() -> None:
    result = validate(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_validator_rejects_a_broken_compose_file(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    text = COMPOSE.read_text().replace("service_completed_successfully", "service_finished", 1)
    broken.write_text(text)
    result = validate(broken)
    assert result.returncode == 1
    assert "service_finished" in result.stdout + result.stderr


def test_every_long_running_service_has_a_healthcheck_and_restarts(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert set(services) == INFRA | OURS | ONE_SHOT | {"e2b-sim"}
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service["restart"] == "no", name
            assert "healthcheck" not in service, name
            continue
        assert service["healthcheck"]["test"][0] == "CMD", name
    for name in OURS:
        service = services[name]
        assert service["restart"] == "unless-stopped", name
        probe = " ".join(services[name]["healthcheck"]["test"])
        assert re.search(r"http://127\.0\.0\.1:80\d\d/readyz", probe), name


def test_services_start_after_the_init_job_and_the_infrastructure_is_healthy(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    init = services["init"]["depends_on"]
    assert {k: v["condition"] for k, v in init.items()} == {
        "kafka": "service_healthy",
        "postgres": "service_healthy",
    }
    assert services["init"]["command"] == ["init"]
    for name in [*OURS, "register"]:
        depends = services[name]["depends_on"]
        assert depends["init"]["condition"] == "service_completed_successfully", name
        for infra in ("kafka", "redis"):
            if name != "register":
                assert depends[infra]["condition"] == "service_healthy", (name, infra)
    assert services["projector"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_environment_names_are_the_ones_the_services_read(compose: dict[str, Any]) -> None:
    for name in [*OURS, *ONE_SHOT]:
        env = set(compose["services"][name]["environment"])
        allowed = SETTINGS | (TOPIC_LAYOUT if name == "init" else set())
        assert env <= allowed, (name, env - allowed)
        assert "KAFKA_BOOTSTRAP_SERVERS" in env, name
    # Secrets are never given a default: compose refuses to start without them.
    text = COMPOSE.read_text()
    for secret in ("E2B_WEBHOOK_SECRET", "STATUS_API_JWT_SECRET"):
        assert f"${{{secret}:?" in text


def test_each_service_is_given_only_the_secrets_it_reads(compose: dict[str, Any]) -> None:
    secrets = {"E2B_WEBHOOK_SECRET", "STATUS_API_JWT_SECRET", "E2B_API_KEY"}
    reads = {
        "ingest": IngestSettings,
        "projector": ProjectorSettings,
        "status-api": StatusApiSettings,
        "enforcer": TickerSettings,
        "actuator": ActuatorSettings,
    }
    for name, settings in reads.items():
        given = set(compose["services"][name]["environment"]) & secrets
        wanted = {f.name.upper() for f in dataclasses.fields(settings)} & secrets
        assert given == wanted, name
    assert set(compose["services"]["init"]["environment"]) & secrets == set()
    register = set(compose["services"]["register"]["environment"]) & secrets
    assert register == {"E2B_API_KEY", "E2B_WEBHOOK_SECRET"}


def _scripts() -> dict[str, str]:
    out = {}
    for pyproject in ROOT.glob("*/*/pyproject.toml"):
        out.update(tomllib.loads(pyproject.read_text())["project"].get("scripts", {}))
    return out


def _packages() -> set[str]:
    return {
        tomllib.loads(p.read_text())["project"]["name"]
        for p in [*ROOT.glob("*/*/pyproject.toml"), *ROOT.glob("libs/*/pyproject.toml")]
    }


def test_each_image_is_multi_stage_non_root_and_runs_a_real_command(
    compose: dict[str, Any],
) -> None:
    scripts, packages = _scripts(), _packages()
    dockerfiles = {s["build"]["dockerfile"] for s in compose["services"].values() if "build" in s}
    assert len(dockerfiles) == 6  # ingest, projector, status-api, enforcer, e2b-sim, sandboxctl
    for relative in dockerfiles:
        text = (ROOT / relative).read_text()
        stages = re.findall(r"^FROM .+$", text, flags=re.MULTILINE)
        assert len(stages) >= 3, relative  # uv binary, build, runtime
        runtime = text[text.rindex("\nFROM ") :]
        assert "uv" not in re.findall(r"COPY --from=(\S+)", runtime), relative
        assert "apt-get" not in runtime, relative
        assert "pip install" not in runtime, relative
        (user,) = re.findall(r"^USER (\S+)$", runtime, flags=re.MULTILINE)
        assert not user.startswith(("0", "root")), relative
        (package,) = re.findall(r"--package (\S+)", text)
        assert package in packages, relative
        assert "uv sync --frozen --no-dev --no-editable" in text, relative
        command = re.findall(r'^(?:CMD|ENTRYPOINT) \["([^"]+)"', runtime, flags=re.MULTILINE)[0]
        assert command in scripts, (relative, command)
    for name in OURS:
        command = compose["services"][name].get("command")
        if command:  # the enforcer image runs the ticker or the actuator
            assert command[0] in scripts, (name, command)


def _volume_targets(service: dict[str, Any]) -> list[str]:
    return [entry.split(":", 2)[1] for entry in service.get("volumes", [])]


def test_kafka_writes_its_log_to_the_named_volume(compose: dict[str, Any]) -> None:
    # Without KAFKA_LOG_DIRS the apache/kafka image writes under /tmp in the container: a
    # recreated container loses the topics while PostgreSQL keeps the projector's offsets.
    kafka = compose["services"]["kafka"]
    log_dirs = kafka["environment"]["KAFKA_LOG_DIRS"].split(",")
    named = {entry.split(":", 1)[0] for entry in kafka["volumes"]}
    assert named <= set(compose["volumes"])
    for log_dir in log_dirs:
        assert any(
            log_dir == target or log_dir.startswith(f"{target}/")
            for target in _volume_targets(kafka)
        ), log_dir


def test_redis_runs_without_persistence_as_the_readme_says(compose: dict[str, Any]) -> None:
    readme = (ROOT / "README.md").read_text()
    assert "rebuildable read model (no persistence)" in readme
    redis = compose["services"]["redis"]
    command = redis["command"]
    assert command[0] == "redis-server"
    options = dict(zip(command[1::2], command[2::2], strict=True))
    assert options["--appendonly"] == "no"
    assert options["--save"] == ""
    assert "volumes" not in redis


def test_redis_is_bounded_and_never_evicts(compose: dict[str, Any]) -> None:
    """Issue 15, item 1: a maxmemory with noeviction, as `make up` sets it."""
    command = compose["services"]["redis"]["command"]
    options = dict(zip(command[1::2], command[2::2], strict=True))
    assert options["--maxmemory-policy"] == "noeviction"
    assert options["--maxmemory"] == "${REDIS_MAXMEMORY:-2gb}"
    assert "redis-data" not in (compose.get("volumes") or {})
