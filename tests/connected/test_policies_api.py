"""Lifecycle policies through the real path (issue 17): a PUT to status-api becomes a
`project.policy.set` fact on Kafka, the projector folds it into PostgreSQL, and a GET reads it
back with the policy in force and each value's source; who may read and write; a 422 names the
field and publishes nothing; the global default under a project's own; `sandboxctl policy`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox_common import topics
from sandbox_common.facts import policy_subject
from tests.connected.conftest import Stack
from tests.connected.helpers import end_offsets, eventually, records_since, token, unique

pytestmark = pytest.mark.connected

# Harmless to the rest of the session while the default is set: a year paused before a delete,
# 30 days running before a pause.
DEFAULT = {"deleteAfterPausedSeconds": 365 * 86_400, "maxLifetimeSeconds": 30 * 86_400}
QUIET = {"start": "22:00", "end": "06:00", "timezone": "Europe/Paris", "days": ["mon", "tue"]}


def url(stack: Stack, project: str | None) -> str:
    path = "/api/policy/default" if project is None else f"/api/projects/{project}/policy"
    return stack.status_api.url + path


async def put(
    client: httpx.AsyncClient, stack: Stack, project: str | None, body: Any
) -> httpx.Response:
    return await client.put(
        url(stack, project), content=json.dumps(body), headers=token(stack, admin=True)
    )


async def applied(
    client: httpx.AsyncClient, stack: Stack, project: str | None, event_id: str
) -> dict[str, Any]:
    """The GET once the projector has folded the fact `event_id`."""
    headers = token(stack, project) if project else token(stack, admin=True)

    async def seen() -> dict[str, Any] | None:
        r = await client.get(url(stack, project), headers=headers)
        assert r.status_code == 200, r.text
        answer: dict[str, Any] = r.json()
        return answer if answer["eventId"] == event_id else None

    found: dict[str, Any] = await eventually(seen, within=15)
    return found


def sources(answer: dict[str, Any]) -> dict[str, tuple[Any, str]]:
    return {k: (v["value"], v["source"]) for k, v in answer["effective"].items()}


@pytest.fixture
async def default_restored(client: httpx.AsyncClient, stack: Stack) -> AsyncIterator[None]:
    """The global default governs every test after this one: set back to nothing after."""
    yield
    r = await put(client, stack, None, {})
    assert r.status_code == 202, r.text
    await applied(client, stack, None, r.json()["eventId"])


async def test_a_project_policy_goes_through_kafka_and_postgres_and_back(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    project = unique("policy")
    fresh = await client.get(url(stack, project), headers=token(stack, project))
    assert fresh.status_code == 200
    assert (fresh.json()["policy"], fresh.json()["setAt"]) == ({}, None)
    body = {"idleTimeoutSeconds": 600, "quietHours": QUIET}
    r = await put(client, stack, project, body)
    assert r.status_code == 202, r.text
    accepted = r.json()
    assert (accepted["projectId"], accepted["policy"]) == (project, body)
    answer = await applied(client, stack, project, accepted["eventId"])
    assert answer["policy"] == body
    assert answer["setAt"] is not None
    assert answer["setBy"] == "dev"  # the admin token's subject
    found = sources(answer)
    assert found["idleTimeoutSeconds"] == (600, "project")
    assert found["quietHours"] == (QUIET, "project")
    assert found["warnBeforeSeconds"][1] == "setting"
    assert found["neverPause"] == (None, "setting")
    assert sources(accepted) == found  # the PUT said what GET now shows
    # Replaced whole: a field left out is inherited again.
    again = await put(client, stack, project, {"neverPause": True})
    answer = await applied(client, stack, project, again.json()["eventId"])
    assert answer["policy"] == {"neverPause": True}
    assert sources(answer)["idleTimeoutSeconds"][1] == "setting"


async def test_a_project_token_reads_its_own_policy_and_writes_none(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    project, other = unique("policy"), unique("policy")
    mine = token(stack, project)
    before = await end_offsets(stack.infra.kafka)
    refused = await client.put(url(stack, project), content=b"{}", headers=mine)
    assert refused.status_code == 403, refused.text
    assert (await client.put(url(stack, None), content=b"{}", headers=mine)).status_code == 403
    assert (await client.get(url(stack, other), headers=mine)).status_code == 403
    assert (await client.get(url(stack, None), headers=mine)).status_code == 403
    listing = stack.status_api.url + "/api/policies"
    assert (await client.get(listing, headers=mine)).status_code == 403
    assert (await client.get(url(stack, project))).status_code == 401
    await assert_nothing_published(stack, before, project)


async def assert_nothing_published(
    stack: Stack, before: dict[Any, int], project: str | None
) -> None:
    subject = topics.record_key(policy_subject(project))
    records = await records_since(stack.infra.kafka, before)
    assert not [r for r in records if r.key == subject], "a refused PUT reached the topic"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"quietHours": {**QUIET, "timezone": "Mars/Olympus_Mons"}}, "quietHours.timezone"),
        ({"idleTimeoutSeconds": 3}, "idleTimeoutSeconds"),
        ({"idleTimeoutSeconds": 30 * 86_400}, "idleTimeoutSeconds"),
    ],
)
async def test_an_invalid_policy_is_a_422_naming_the_field_and_never_reaches_the_topic(
    client: httpx.AsyncClient, stack: Stack, body: dict[str, Any], field: str
) -> None:
    project = unique("policy")
    before = await end_offsets(stack.infra.kafka)
    for level in (project, None):
        r = await put(client, stack, level, body)
        assert r.status_code == 422, r.text
        assert r.json()["field"] == field
        assert field in r.json()["detail"]
    await assert_nothing_published(stack, before, project)
    await assert_nothing_published(stack, before, None)


@pytest.mark.usefixtures("default_restored")
async def test_the_default_policy_sits_under_a_projects_own(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    project = unique("policy")
    r = await put(client, stack, project, {"idleTimeoutSeconds": 900})
    await applied(client, stack, project, r.json()["eventId"])
    r = await put(client, stack, None, {**DEFAULT, "idleTimeoutSeconds": 400})
    assert r.status_code == 202, r.text
    assert "projectId" not in r.json()
    default = await applied(client, stack, None, r.json()["eventId"])
    assert default["policy"] == {**DEFAULT, "idleTimeoutSeconds": 400}
    assert sources(default)["idleTimeoutSeconds"] == (400, "default")
    ours = await client.get(url(stack, project), headers=token(stack, project))
    found = sources(ours.json())
    assert found["idleTimeoutSeconds"] == (900, "project")
    assert found["deleteAfterPausedSeconds"] == (DEFAULT["deleteAfterPausedSeconds"], "default")
    assert found["maxLifetimeSeconds"] == (DEFAULT["maxLifetimeSeconds"], "default")
    assert found["warnBeforeSeconds"][1] == "setting"
    # A project with no policy of its own takes the default's values.
    bare = unique("policy")
    inherited = await client.get(url(stack, bare), headers=token(stack, bare))
    assert sources(inherited.json())["idleTimeoutSeconds"] == (400, "default")


def sandboxctl(stack: Stack, *argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **stack.env}
    return subprocess.run(
        [sys.executable, "-c", "from sandboxctl.cli import main; main()", *argv],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_sandboxctl_sets_gets_and_lists_a_policy(
    client: httpx.AsyncClient, stack: Stack, tmp_path: Path
) -> None:
    project = unique("policy-cli")
    (tmp_path / "policy.json").write_text(json.dumps({"idleTimeoutSeconds": 1200}))
    where = ["--url", stack.status_api.url]
    done = sandboxctl(
        stack, "policy", "set", "--project", project, "--file", str(tmp_path / "policy.json"),
        "--json", *where,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    event_id = json.loads(done.stdout)["eventId"]
    answer = await applied(client, stack, project, event_id)
    assert answer["setBy"].startswith("sandboxctl:")
    got = sandboxctl(stack, "policy", "get", "--project", project, *where)
    assert got.returncode == 0, got.stderr
    assert f"project {project}: set " in got.stdout
    assert re.search(r"^  idleTimeoutSeconds +1200  \(project\)$", got.stdout, re.MULTILINE)
    listed = sandboxctl(stack, "policy", "list", "--json", *where)
    assert listed.returncode == 0, listed.stderr
    mine = [p for p in json.loads(listed.stdout)["projects"] if p["projectId"] == project]
    assert [p["policy"] for p in mine] == [{"idleTimeoutSeconds": 1200}]
    # From standard input, refused: one line naming the field, exit 1.
    bad = sandboxctl(
        stack, "policy", "set", "--default", "--file", "-", *where,
        stdin='{"quietHours": {"start": "22:00", "end": "22:00", "timezone": "UTC"}}',
    )  # fmt: skip
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [
        "sandboxctl policy set: policy refused: quietHours.end: "
        "the same time as start, a window of no length"
    ]
