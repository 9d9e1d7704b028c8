"""Project API keys end to end (issue 17, item 4): made by `sandboxctl api-key create` in
PostgreSQL, sent as `X-API-Key` to the real status-api; they act for their project alone, not on
streams, and stop working once revoked."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.connected.conftest import Stack
from tests.connected.helpers import eventually, live_sandbox, token, unique
from tests.connected.test_policies_api import sandboxctl
from tests.connected.test_route_access import ROUTES, UNREVEALED, let_in

pytestmark = pytest.mark.connected


def create_key(stack: Stack, project: str, name: str = "agent") -> dict[str, str]:
    done = sandboxctl(stack, "api-key", "create", "--project", project, "--name", name, "--json")
    assert done.returncode == 0, done.stderr
    made: dict[str, str] = json.loads(done.stdout)
    assert made["projectId"] == project
    return made


def key(made: dict[str, str]) -> dict[str, str]:
    return {"X-API-Key": made["key"]}


@pytest.fixture(scope="module")
async def owned(stack: Stack) -> tuple[str, str, dict[str, str]]:
    """A live sandbox of a new project, and a key of that project."""
    project, sandbox = await live_sandbox(stack, "keyed")
    return project, sandbox, create_key(stack, project)


@pytest.mark.parametrize(("method", "template", "admin_only"), ROUTES)
async def test_a_key_acts_for_its_own_project_and_no_other(
    client: httpx.AsyncClient,
    stack: Stack,
    owned: tuple[str, str, dict[str, str]],
    method: str,
    template: str,
    admin_only: bool,
) -> None:
    project, sandbox, made = owned
    url = stack.status_api.url + template.format(project=project, sandbox=sandbox)
    intruder = key(create_key(stack, unique("intruder")))
    streams = "stream" in template
    async with client.stream(method, url, headers=intruder) as r:
        body = await r.aread()
        refused = 401 if streams else 404 if template in UNREVEALED else 403
        assert r.status_code == refused, (r.status_code, body[:200])
    assert b'"status":"RUNNING"' not in body
    async with client.stream(method, url, headers=key(made)) as mine:
        body = await mine.aread()
        if streams:  # a key never expires; a stream lives as long as its credential
            assert mine.status_code == 401, body[:200]
            assert b"bearer token" in body
        elif admin_only:
            assert mine.status_code == 403, body[:200]
        else:
            assert let_in(method, template, mine.status_code), (mine.status_code, body[:200])


async def test_a_servers_heartbeat_with_a_key_is_recorded_under_its_source(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    # A sandbox of its own: heartbeats of the others' are throttled for a while.
    project, sandbox = await live_sandbox(stack, "keyed-beat")
    made = create_key(stack, project)
    r = await client.post(
        f"{stack.status_api.url}/api/projects/{project}/sandbox/activity",
        headers=key(made),
        json={"source": "backend"},
    )
    assert r.status_code == 202, r.text

    async def recorded() -> bool:
        history = await client.get(
            f"{stack.status_api.url}/api/sandboxes/{sandbox}/history", headers=key(made)
        )
        return "backend" in {e["source"] for e in history.json()["events"]}

    await eventually(recorded, within=10)


async def test_malformed_doubled_and_revoked_keys_are_refused(
    client: httpx.AsyncClient, stack: Stack, owned: tuple[str, str, dict[str, str]]
) -> None:
    project, _, _ = owned
    url = f"{stack.status_api.url}/api/projects/{project}/sandbox"
    made = create_key(stack, project, "short-lived")
    assert (await client.get(url, headers=key(made))).status_code == 200
    for bad in ("sbk_nonsense", made["key"][:-1] + ("A" if made["key"][-1] != "A" else "B")):
        r = await client.get(url, headers={"X-API-Key": bad})
        assert r.status_code == 401, r.text
    both = {**key(made), **token(stack, project)}
    r = await client.get(url, headers=both)
    assert r.status_code == 401
    assert "not both" in r.json()["detail"]

    listed = sandboxctl(stack, "api-key", "list", "--project", project, "--json")
    assert listed.returncode == 0, listed.stderr
    keys = {k["keyId"]: k for k in json.loads(listed.stdout)}
    assert keys[made["keyId"]]["revokedAt"] is None
    assert made["key"] not in listed.stdout  # only ever its digest is stored
    revoked = sandboxctl(stack, "api-key", "revoke", made["keyId"])
    assert revoked.returncode == 0, revoked.stderr
    assert sandboxctl(stack, "api-key", "revoke", "0" * 16).returncode == 1

    async def refused() -> bool:
        return (await client.get(url, headers=key(made))).status_code == 401

    await eventually(refused, within=40, interval=1.0)  # the status-api's row TTL is 30 s
    r = await client.get(url, headers=key(made))
    assert "revoked" in r.json()["detail"]
