"""`sandboxctl policy get|set|list` against a fake status-api: what it sends (an admin token,
the body as given), what it prints, and one line naming the field when a policy is refused."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from sandbox_common.settings import load
from sandboxctl import cli
from sandboxctl.errors import OperatorError
from sandboxctl.settings import Settings

SECRET = "policy-cli-secret-" + "y" * 32
EFFECTIVE = {
    "idleTimeoutSeconds": {"value": 600, "source": "project"},
    "neverPause": {"value": None, "source": "setting"},
}


class FakeApi:
    def __init__(self, status: int = 200, answer: dict[str, Any] | None = None) -> None:
        self.status = status
        self.answer = answer or {}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.status, json=self.answer)


def run(argv: list[str], api: FakeApi, env: dict[str, str] | None = None) -> None:
    args: argparse.Namespace = cli.parser().parse_args(argv)
    args.transport = httpx.MockTransport(api)
    settings = load(Settings, {"STATUS_API_JWT_SECRET": SECRET, **(env or {})})
    args.run(args, settings)


def test_get_asks_status_api_as_an_admin_and_prints_each_source(
    capsys: pytest.CaptureFixture[str],
) -> None:
    answer = {
        "projectId": "p1",
        "policy": {"idleTimeoutSeconds": 600},
        "setAt": "2026-12-02T12:00:00Z",
        "eventId": "ev-1",
        "setBy": "sandboxctl:ops",
        "effective": EFFECTIVE,
    }
    api = FakeApi(answer=answer)
    run(["policy", "get", "--project", "p1"], api, {"STATUS_API_PORT": "18999"})
    (request,) = api.requests
    assert (request.method, str(request.url)) == (
        "GET",
        "http://127.0.0.1:18999/api/projects/p1/policy",
    )
    claims = jwt.decode(
        request.headers["authorization"].removeprefix("Bearer "), SECRET, algorithms=["HS256"]
    )
    assert claims["admin"] is True
    assert claims["sub"].startswith("sandboxctl:")
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "project p1: set 2026-12-02T12:00:00Z by sandboxctl:ops"
    assert out[1] == 'policy: {"idleTimeoutSeconds": 600}'
    assert "  idleTimeoutSeconds  600  (project)" in out
    assert "  neverPause          -  (setting)" in out


def test_set_sends_the_file_as_it_is_to_the_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body = b'{"neverPause": true}'
    (tmp_path / "p.json").write_bytes(body)
    answer = {"policy": {"neverPause": True}, "eventId": "ev-2", "effective": EFFECTIVE}
    api = FakeApi(202, answer)
    run(["policy", "set", "--default", "--file", str(tmp_path / "p.json"), "--json"], api)
    (request,) = api.requests
    assert (request.method, request.url.path, request.content) == (
        "PUT",
        "/api/policy/default",
        body,
    )
    assert json.loads(capsys.readouterr().out) == answer


def test_set_reads_standard_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"{}")))
    api = FakeApi(202, {"projectId": "p1", "policy": {}, "eventId": "e", "effective": {}})
    run(["policy", "set", "--project", "p1", "--file", "-", "--url", "http://api:1/"], api)
    assert str(api.requests[0].url) == "http://api:1/api/projects/p1/policy"
    assert api.requests[0].content == b"{}"


def test_a_refused_policy_is_one_line_naming_the_field(tmp_path: Path) -> None:
    (tmp_path / "p.json").write_text('{"quietHours": {}}')
    refused = {
        "status_code": 422,
        "detail": "quietHours.timezone: unknown time zone 'Mars'",
        "field": "quietHours.timezone",
        "reason": "unknown time zone 'Mars'",
    }
    argv = ["policy", "set", "--project", "p1", "--file", str(tmp_path / "p.json")]
    with pytest.raises(OperatorError) as caught:
        run(argv, FakeApi(422, refused))
    assert str(caught.value) == "policy refused: quietHours.timezone: unknown time zone 'Mars'"
    with pytest.raises(OperatorError, match="status-api answered 403: an admin token is needed"):
        run(argv, FakeApi(403, {"status_code": 403, "detail": "an admin token is needed"}))


def test_one_level_must_be_named() -> None:
    for argv in (["policy", "get"], ["policy", "get", "--default", "--project", "p1"]):
        with pytest.raises(OperatorError, match="--project ID or --default"):
            run(argv, FakeApi())


def test_list_follows_the_pages(capsys: pytest.CaptureFixture[str]) -> None:
    pages = [
        {
            "default": {"policy": {"idleTimeoutSeconds": 300}, "setAt": "t0"},
            "projects": [{"projectId": "a", "policy": {"neverPause": True}, "setAt": "t1"}],
            "nextCursor": "c1",
        },
        {
            "default": None,
            "projects": [{"projectId": "b", "policy": {}, "setAt": "t2"}],
            "nextCursor": None,
        },
    ]
    seen: list[httpx.Request] = []

    def api(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=pages[len(seen) - 1])

    args = cli.parser().parse_args(["policy", "list"])
    args.transport = httpx.MockTransport(api)
    args.run(args, load(Settings, {"STATUS_API_JWT_SECRET": SECRET}))
    assert [r.url.params.get("cursor") for r in seen] == [None, "c1"]
    assert capsys.readouterr().out.splitlines() == [
        'default: {"idleTimeoutSeconds": 300}',
        'a: {"neverPause": true} (set t1)',
        "b: {} (set t2)",
    ]


def test_an_unreachable_status_api_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STATUS_API_JWT_SECRET", SECRET)
    with pytest.raises(SystemExit) as exited:
        cli.main(["policy", "get", "--default", "--url", "http://127.0.0.1:9", "--timeout", "2"])
    assert exited.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("sandboxctl policy get: status-api at http://127.0.0.1:9 unreachable")
