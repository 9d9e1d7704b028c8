"""Every status-api route refuses a token for another project, and never shows its data.

The list of routes is checked against the OpenAPI document: a new route that is not added here
fails the test."""

from __future__ import annotations

import httpx
import pytest

from tests.connected.conftest import Stack
from tests.connected.helpers import live_sandbox, token, unique

pytestmark = pytest.mark.connected

# method, path template ({project} and {sandbox} belong to the victim), admin only
ROUTES = [
    ("GET", "/api/projects/{project}/sandbox", False),
    ("GET", "/api/projects/{project}/sandbox/stream", False),
    ("POST", "/api/projects/{project}/sandbox/activity", False),
    ("POST", "/api/projects/{project}/sandbox/wake", False),
    ("GET", "/api/sandboxes/{sandbox}", False),
    ("GET", "/api/sandboxes/{sandbox}/history", False),
    ("POST", "/api/sandboxes/{sandbox}/pause", True),
    ("GET", "/api/sandboxes", True),
    ("GET", "/api/sandboxes/stream", True),
    ("GET", "/api/projects/{project}/policy", False),
    ("PUT", "/api/projects/{project}/policy", True),
    ("GET", "/api/policy/default", True),
    ("PUT", "/api/policy/default", True),
    ("GET", "/api/policies", True),
    ("GET", "/api/projects/{project}/notifications", False),
    ("PUT", "/api/projects/{project}/notifications", False),
    ("DELETE", "/api/projects/{project}/notifications", False),
    ("GET", "/api/projects/{project}/savings", False),
    ("GET", "/api/savings", True),
]
# What the owner is answered where it is let in but the request itself is not a success: the
# victim has no notification receiver, and an empty PUT body is not one.
OWNER_ANSWERS = {
    ("GET", "/api/projects/{project}/notifications"): 404,
    ("PUT", "/api/projects/{project}/notifications"): 422,
    ("DELETE", "/api/projects/{project}/notifications"): 404,
}


def let_in(method: str, template: str, status: int) -> bool:
    """The owner's answer: the route let it in."""
    return status == OWNER_ANSWERS.get((method, template)) or status < 300


# By sandbox id, another project's sandbox is answered as an unknown one (404): ids of other
# projects are not revealed.
UNREVEALED = ["/api/sandboxes/{sandbox}", "/api/sandboxes/{sandbox}/history"]
# Routes about no project nor sandbox: any valid token gets its own answer (a stream ticket
# opens only what that token may; tests/connected/test_stream_bounds.py).
UNSCOPED = [("POST", "/api/stream-tickets")]


@pytest.fixture(scope="module")
async def victim(stack: Stack) -> tuple[str, str]:
    return await live_sandbox(stack, "victim")


@pytest.mark.parametrize(("method", "template", "admin_only"), ROUTES)
async def test_a_token_for_another_project_is_refused(
    client: httpx.AsyncClient,
    stack: Stack,
    victim: tuple[str, str],
    method: str,
    template: str,
    admin_only: bool,
) -> None:
    project, sandbox = victim
    url = stack.status_api.url + template.format(project=project, sandbox=sandbox)
    intruder = token(stack, unique("intruder"))
    async with client.stream(method, url, headers=intruder) as r:
        body = await r.aread()
        refused = 404 if template in UNREVEALED else 403
        assert r.status_code == refused, (r.status_code, body[:200])
    assert sandbox.encode() not in body or b"no access" in body or b"no sandbox" in body
    assert b'"status":"RUNNING"' not in body
    if not admin_only:
        # The owner's token gets through (so the 403 above was about the project).
        async with client.stream(method, url, headers=token(stack, project)) as ok:
            assert let_in(method, template, ok.status_code), ok.status_code
    no_token = await client.request(method, url) if "stream" not in template else None
    if no_token is not None:
        assert no_token.status_code == 401


async def test_the_list_covers_every_api_route(client: httpx.AsyncClient, stack: Stack) -> None:
    schema = (await client.get(f"{stack.status_api.url}/schema/openapi.json")).json()
    documented = {
        (method.upper(), path)
        for path, item in schema["paths"].items()
        if path.startswith("/api/")
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }
    listed = {
        (m, t.replace("{project}", "{project_id}").replace("{sandbox}", "{sandbox_id}"))
        for m, t, _ in ROUTES
    }
    assert documented == listed | set(UNSCOPED)


@pytest.mark.parametrize("template", UNREVEALED)
async def test_another_projects_sandbox_is_answered_as_an_unknown_one(
    client: httpx.AsyncClient, stack: Stack, victim: tuple[str, str], template: str
) -> None:
    _, sandbox = victim
    unknown = "x" * len(sandbox)
    intruder = token(stack, unique("intruder"))
    answers = []
    for sandbox_id in (sandbox, unknown):
        r = await client.get(
            stack.status_api.url + template.format(sandbox=sandbox_id), headers=intruder
        )
        headers = {k: v for k, v in r.headers.items() if k != "date"}
        answers.append((r.status_code, r.content.replace(sandbox_id.encode(), b"ID"), headers))
    assert answers[0] == answers[1]
    assert answers[0][0] == 404
