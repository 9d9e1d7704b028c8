"""`sandboxctl policy get|set|list`: lifecycle policies through status-api's API (as an admin,
with a short-lived token minted from STATUS_API_JWT_SECRET), so the CLI takes the same checks
and leaves the same facts as any other client. Exit 0 done, 1 with a one-line reason (a policy
refused names its field: `quietHours.timezone: unknown time zone ...`)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
import time
from typing import Any

import httpx

from sandboxctl.errors import OperatorError
from sandboxctl.settings import Settings

_TOKEN_TTL_SECONDS = 300
_ANY_ADDRESS = ("", "0.0.0.0", "::")  # noqa: S104 - a listen address, not one we bind


def base_url(args: argparse.Namespace, settings: Settings) -> str:
    """--url, else where STATUS_API_HOST / STATUS_API_PORT make status-api listen."""
    if args.url:
        return str(args.url).rstrip("/")
    host = settings.status_api_host
    host = "127.0.0.1" if host in _ANY_ADDRESS else host
    return f"http://{host}:{settings.status_api_port}"


def admin_token(settings: Settings) -> str:
    from status_api.auth import Claims, mint

    settings.require("status_api_jwt_secret")
    try:
        who = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        who = "unknown"
    return mint(
        settings.status_api_jwt_secret,
        Claims(
            projects=[],
            admin=True,
            ttl_seconds=_TOKEN_TTL_SECONDS,
            now=int(time.time()),
            # Recorded as who set the policy (the fact's actor).
            subject=f"sandboxctl:{who}",
            issuer=settings.status_api_jwt_issuer or None,
            audience=settings.status_api_jwt_audience or None,
        ),
    )


def path_of(args: argparse.Namespace) -> str:
    if bool(args.project) == bool(args.default):
        raise OperatorError("give --project ID or --default (one of them)")
    return "/api/policy/default" if args.default else f"/api/projects/{args.project}/policy"


def refusal(response: httpx.Response) -> str:
    """The one line for an answer that is not a success."""
    try:
        body = response.json()
    except ValueError:
        body = {}
    detail = body.get("detail") if isinstance(body, dict) else None
    if response.status_code == 422 and isinstance(body, dict) and "field" in body:
        return f"policy refused: {body['field'] or 'body'}: {body.get('reason')}"
    return f"status-api answered {response.status_code}: {detail or response.text[:200]}"


def call(args: argparse.Namespace, settings: Settings, method: str, path: str, **kw: Any) -> Any:
    url = base_url(args, settings)

    async def run() -> httpx.Response:
        headers = {"Authorization": f"Bearer {admin_token(settings)}"}
        async with httpx.AsyncClient(
            base_url=url, headers=headers, timeout=args.timeout, transport=args.transport
        ) as http:
            return await http.request(method, path, **kw)

    try:
        response = asyncio.run(run())
    except httpx.HTTPError as exc:
        raise OperatorError(f"status-api at {url} unreachable: {exc!r}") from exc
    if response.status_code >= 300:
        raise OperatorError(refusal(response))
    return response.json()


def _value(value: object) -> str:
    return "-" if value is None else json.dumps(value, separators=(",", ":"))


def describe(answer: dict[str, Any]) -> list[str]:
    """A GET's or a PUT's answer as lines: whose, when, then each field in force and from
    where."""
    whose = f"project {answer['projectId']}" if answer.get("projectId") else "default"
    if "setAt" in answer:
        when = f"set {answer['setAt']} by {answer.get('setBy')}" if answer["setAt"] else "not set"
    else:
        when = f"accepted (event {answer['eventId']}); applied once projected"
    lines = [f"{whose}: {when}", f"policy: {json.dumps(answer['policy'], sort_keys=True)}"]
    effective = answer.get("effective", {})
    width = max((len(name) for name in effective), default=0)
    for name, found in effective.items():
        lines.append(f"  {name.ljust(width)}  {_value(found['value'])}  ({found['source']})")
    return lines


def listing(page: dict[str, Any]) -> list[str]:
    default = page.get("default")
    lines = [f"default: {json.dumps(default['policy'], sort_keys=True) if default else '{}'}"]
    lines += [
        f"{p['projectId']}: {json.dumps(p['policy'], sort_keys=True)} (set {p['setAt']})"
        for p in page["projects"]
    ]
    return lines


def _show(args: argparse.Namespace, document: dict[str, Any], lines: list[str]) -> None:
    print(json.dumps(document) if args.json else "\n".join(lines))


def _get(args: argparse.Namespace, settings: Settings) -> None:
    answer = call(args, settings, "GET", path_of(args))
    _show(args, answer, describe(answer))


def _read_policy(source: str) -> bytes:
    if source == "-":
        return sys.stdin.buffer.read()
    with open(source, "rb") as f:
        return f.read()


def _set(args: argparse.Namespace, settings: Settings) -> None:
    path = path_of(args)
    body = _read_policy(args.file)
    headers = {"Content-Type": "application/json"}
    answer = call(args, settings, "PUT", path, content=body, headers=headers)
    _show(args, answer, describe(answer))


def _list(args: argparse.Namespace, settings: Settings) -> None:
    pages: list[dict[str, Any]] = []
    cursor = None
    while True:
        params = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        page = call(args, settings, "GET", "/api/policies", params=params)
        pages.append(page)
        cursor = page.get("nextCursor")
        if not cursor:
            break
    whole = {"default": pages[0]["default"], "projects": [p for g in pages for p in g["projects"]]}
    _show(args, whole, listing(whole))


def add_commands(sub: Any) -> None:
    policy = sub.add_parser(
        "policy", help="lifecycle policies, through status-api (STATUS_API_JWT_SECRET)"
    ).add_subparsers(dest="action", required=True)

    def common(p: argparse.ArgumentParser, scoped: bool = True) -> argparse.ArgumentParser:
        if scoped:
            p.add_argument("--project", help="the project's policy")
            p.add_argument("--default", action="store_true", help="the global default policy")
        p.add_argument(
            "--url", help="status-api's base URL (default: STATUS_API_HOST:STATUS_API_PORT)"
        )
        p.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
        p.add_argument("--json", action="store_true", help="status-api's JSON answer as it is")
        p.set_defaults(transport=None)
        return p

    common(
        policy.add_parser("get", help="a policy and the one in force, with sources")
    ).set_defaults(run=_get)
    setter = common(policy.add_parser("set", help="replace a policy whole (admin)"))
    setter.add_argument(
        "--file", required=True, help="the policy's JSON ('-': standard input; {} inherits all)"
    )
    setter.set_defaults(run=_set)
    common(
        policy.add_parser("list", help="the default and every project with a policy"), False
    ).set_defaults(run=_list)
