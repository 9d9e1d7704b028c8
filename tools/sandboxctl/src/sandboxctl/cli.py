"""`sandboxctl`: the operator's command line. Exit 0 on success, 1 with a one-line reason, 2 a
usage error (argparse), 3 done but problems found (`status`, `topics describe`)."""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import json
import logging
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx

from sandbox_common.e2b_api.client import CallLimits, E2BApi, E2BApiError
from sandbox_common.settings import SettingsError, load
from sandboxctl import (
    api_key_cmd,
    dlq,
    history,
    ops_cli,
    policy_cmd,
    rebuild,
    reconcile,
    simulate_cmd,
)
from sandboxctl.errors import OperatorError
from sandboxctl.settings import Settings

LIFECYCLE_PREFIX = "sandbox.lifecycle."


def _token(args: argparse.Namespace, settings: Settings) -> None:
    from status_api.auth import Claims, mint

    settings.require("status_api_jwt_secret")
    if not args.project and not args.admin:
        raise SettingsError("give --project ID (repeatable) and/or --admin")
    print(
        mint(
            settings.status_api_jwt_secret,
            Claims(
                projects=args.project or [],
                admin=args.admin,
                ttl_seconds=args.ttl,
                now=int(time.time()),
                subject=args.subject,
                issuer=settings.status_api_jwt_issuer or None,
                audience=settings.status_api_jwt_audience or None,
            ),
        )
    )


def _migrate(args: argparse.Namespace, settings: Settings) -> None:
    from projector.adapters.schema import migrate

    applied = asyncio.run(migrate(settings.database_url))
    print(f"applied: {', '.join(applied)}" if applied else "schema up to date")


def _send_webhook(args: argparse.Namespace, settings: Settings) -> None:
    from sandbox_common import e2b

    settings.require("e2b_webhook_secret")
    sandbox_id = args.sandbox or f"sbx-{args.project}"
    payload = e2b.build_webhook(
        e2b.WebhookEvent(
            id=str(uuid.uuid4()),
            type=f"sandbox.lifecycle.{args.type}",
            sandbox_id=sandbox_id,
            timestamp=datetime.now(UTC),
            metadata={settings.project_metadata_key: args.project},
            version=args.payload_version,
        )
    )
    body = json.dumps(payload).encode()
    url = f"{args.ingest_url.rstrip('/')}/api/webhooks/e2b"
    response = httpx.post(
        url, content=body, headers=e2b.signed_headers(settings.current_webhook_secret, body)
    )
    print(f"{response.status_code} {response.text}")
    if response.status_code >= 300:
        raise RuntimeError(f"ingest answered {response.status_code}")


def _e2b(args: argparse.Namespace, settings: Settings) -> E2BApi:
    settings.require("e2b_api_key")
    return E2BApi(
        settings.e2b_api_url,
        settings.e2b_api_key,
        CallLimits(timeout_seconds=args.timeout),
        transport=args.transport,
    )


def _event_types(given: Sequence[str] | None) -> list[str]:
    from sandbox_common import e2b

    names = given or e2b.SUBSCRIBED_TYPES
    return [n if n.startswith(LIFECYCLE_PREFIX) else LIFECYCLE_PREFIX + n for n in names]


def _describe(hook: dict[str, Any]) -> str:
    events = ",".join(str(e).removeprefix(LIFECYCLE_PREFIX) for e in hook.get("events", []))
    enabled = "enabled" if hook.get("enabled") else "disabled"
    return f"{hook.get('id')} {hook.get('name')!r} {hook.get('url')} {enabled} events={events}"


def _webhooks_register(args: argparse.Namespace, settings: Settings) -> None:
    settings.require("e2b_webhook_secret")
    events = _event_types(args.events)

    async def run() -> str:
        async with _e2b(args, settings) as api:
            same_url = [h for h in await api.list_webhooks() if h.get("url") == args.url]
            if not same_url:
                hook = await api.create_webhook(
                    name=args.name,
                    url=args.url,
                    events=events,
                    signature_secret=settings.current_webhook_secret,
                )
                return f"registered {_describe(hook)}"
            hook, *others = same_url
            changes: dict[str, Any] = {}
            if sorted(hook.get("events", [])) != sorted(events):
                changes["events"] = events
            if not hook.get("enabled", True):
                changes["enabled"] = True
            if args.rotate_secret:
                changes["signatureSecret"] = settings.current_webhook_secret
            other_ids = ", ".join(str(h.get("id")) for h in others)
            note = f" (also registered for this url: {other_ids})" if others else ""
            if not changes:
                return f"already registered {_describe(hook)}{note}"
            hook = await api.update_webhook(str(hook["id"]), changes)
            changed = ", ".join(k for k in changes if k != "signatureSecret")
            if "signatureSecret" in changes:
                changed = ", ".join(filter(None, [changed, "secret"]))
            return f"updated ({changed}) {_describe(hook)}{note}"

    print(asyncio.run(run()))


def _webhooks_list(args: argparse.Namespace, settings: Settings) -> None:
    async def run() -> list[dict[str, Any]]:
        async with _e2b(args, settings) as api:
            return await api.list_webhooks()

    hooks = asyncio.run(run())
    if args.json:
        for hook in hooks:
            print(json.dumps({k: hook.get(k) for k in ("id", "name", "url", "enabled", "events")}))
        return
    rows = [
        (
            str(h.get("id")),
            str(h.get("name")),
            str(h.get("url")),
            "yes" if h.get("enabled") else "no",
            ",".join(str(e).removeprefix(LIFECYCLE_PREFIX) for e in h.get("events", [])),
        )
        for h in hooks
    ]
    header = ("ID", "NAME", "URL", "ENABLED", "EVENTS")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        print("  ".join([*(c.ljust(w) for c, w in zip(row, widths, strict=False)), row[-1]]))


def _webhooks_delete(args: argparse.Namespace, settings: Settings) -> None:
    if bool(args.id) == bool(args.url):
        raise SettingsError("give a webhook ID or --url URL (one of them)")

    async def run() -> list[str]:
        async with _e2b(args, settings) as api:
            if args.id:
                ids = [args.id]
            else:
                ids = [str(h["id"]) for h in await api.list_webhooks() if h.get("url") == args.url]
                if not ids:
                    raise E2BApiError(f"no webhook registered for {args.url}")
            for webhook_id in ids:
                await api.delete_webhook(webhook_id)
            return ids

    for webhook_id in asyncio.run(run()):
        print(f"deleted {webhook_id}")


def _demo_fleet(args: argparse.Namespace, settings: Settings) -> None:
    """Creates the demo sandboxes that do not exist yet, then (optionally) waits until
    status-api shows each one: proof that webhooks flow E2B -> ingest -> projector."""
    key = settings.project_metadata_key
    projects = [f"{args.prefix}{i}" for i in range(1, args.count + 1)]

    async def run() -> dict[str, str]:
        sandboxes: dict[str, str] = {}
        async with _e2b(args, settings) as api:
            for project in projects:
                existing = await api.list_sandboxes(metadata={key: project})
                if existing:
                    sandboxes[project] = existing[0].sandbox_id
                    print(f"{project}: exists {sandboxes[project]} ({existing[0].state})")
                    continue
                sandboxes[project] = await api.create_sandbox(
                    template_id=args.template,
                    timeout_seconds=args.sandbox_timeout,
                    metadata={key: project, "demo": "true"},
                    auto_pause=args.auto_pause,
                )
                then = "pause" if args.auto_pause else "kill"
                print(
                    f"{project}: created {sandboxes[project]} "
                    f"(E2B will {then} it in {args.sandbox_timeout}s)"
                )
        if args.status_api_url:
            await _wait_visible(args, settings, sandboxes)
        return sandboxes

    asyncio.run(run())


async def _wait_visible(
    args: argparse.Namespace, settings: Settings, sandboxes: dict[str, str]
) -> None:
    from status_api.auth import Claims, mint

    settings.require("status_api_jwt_secret")
    jwt = mint(
        settings.status_api_jwt_secret,
        Claims(
            projects=list(sandboxes),
            admin=False,
            ttl_seconds=300,
            now=int(time.time()),
            subject="sandboxctl-demo-fleet",
            issuer=settings.status_api_jwt_issuer or None,
            audience=settings.status_api_jwt_audience or None,
        ),
    )
    base = args.status_api_url.rstrip("/")
    pending = dict(sandboxes)
    seen: dict[str, str] = {}
    deadline = time.monotonic() + args.wait
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {jwt}"}, timeout=5.0) as http:
        while pending:
            for project, sandbox_id in list(pending.items()):
                try:
                    r = await http.get(f"{base}/api/projects/{project}/sandbox")
                except httpx.HTTPError as exc:
                    raise E2BApiError(f"status-api at {base} unreachable: {exc}") from exc
                doc = r.json() if r.status_code == 200 else {}
                if doc.get("sandboxId") == sandbox_id:
                    seen[project] = str(doc.get("status"))
                    del pending[project]
            if not pending:
                break
            if time.monotonic() > deadline:
                raise E2BApiError(
                    f"not visible in status-api within {args.wait:g}s: {', '.join(pending)} "
                    "(check E2B webhook registration and .state/logs/)"
                )
            await asyncio.sleep(0.25)
    for project, sandbox_id in sandboxes.items():
        print(f"{project}: {sandbox_id} {seen[project]} in status-api")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="sandboxctl", description=__doc__)
    root.add_argument(
        "--version",
        action="version",
        version=f"sandboxctl {importlib.metadata.version('sandboxctl')}",
    )
    sub = root.add_subparsers(dest="command", required=True)
    token = sub.add_parser("token", help="print a dev JWT for status-api")
    token.add_argument("--project", action="append", help="project id the token may read")
    token.add_argument("--admin", action="store_true", help="token may read every project")
    token.add_argument("--ttl", type=int, default=24 * 3600, help="lifetime in seconds")
    token.add_argument("--subject", default="dev", help="the token's sub claim")
    token.set_defaults(run=_token)
    migrate = sub.add_parser("migrate", help="apply pending PostgreSQL migrations")
    migrate.set_defaults(run=_migrate)
    send = sub.add_parser("send-webhook", help="send one signed E2B-shaped webhook to ingest")
    send.add_argument("--project", required=True, help="project id put in sandbox metadata")
    send.add_argument(
        "--type", default="created", choices=["created", "paused", "resumed", "updated", "killed"]
    )
    send.add_argument("--sandbox", help="sandbox id (default: sbx-<project>)")
    send.add_argument("--payload-version", default="v2", choices=["v1", "v2"])
    send.add_argument("--ingest-url", default="http://127.0.0.1:8080")
    send.set_defaults(run=_send_webhook)

    def e2b_options(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--timeout", type=float, default=10.0, help="seconds per E2B request (default 10)"
        )
        p.set_defaults(transport=None)
        return p

    hooks = sub.add_parser(
        "webhooks", help="E2B webhook registrations (E2B_API_URL, E2B_API_KEY)"
    ).add_subparsers(dest="action", required=True)
    register = e2b_options(
        hooks.add_parser("register", help="register a URL for lifecycle events (idempotent)")
    )
    register.add_argument("--url", required=True, help="ingest's public webhook URL")
    register.add_argument("--name", default="e2b-lifecycle ingest", help="registration name")
    register.add_argument(
        "--events",
        nargs="+",
        metavar="TYPE",
        help="event types (default: the five lifecycle types; short names like 'paused' ok)",
    )
    register.add_argument(
        "--rotate-secret",
        action="store_true",
        help="also set signatureSecret on an existing registration (E2B never returns it)",
    )
    register.set_defaults(run=_webhooks_register)
    listing = e2b_options(hooks.add_parser("list", help="list the registrations"))
    listing.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    listing.set_defaults(run=_webhooks_list)
    remove = e2b_options(hooks.add_parser("delete", help="delete a registration"))
    remove.add_argument("id", nargs="?", help="webhook id")
    remove.add_argument("--url", help="delete every registration of this URL instead")
    remove.set_defaults(run=_webhooks_delete)

    demo = e2b_options(
        sub.add_parser("demo-fleet", help="create demo sandboxes through the E2B API (idempotent)")
    )
    demo.add_argument("--count", type=int, default=3, help="sandboxes (projects <prefix>1..N)")
    demo.add_argument("--prefix", default="demo-", help="project id prefix (default demo-)")
    demo.add_argument("--template", default="base", help="E2B template id")
    demo.add_argument(
        "--sandbox-timeout", type=int, default=300, help="sandbox timeout in seconds (300)"
    )
    demo.add_argument(
        "--auto-pause", action="store_true", help="E2B pauses (not kills) them at the timeout"
    )
    demo.add_argument("--status-api-url", help="then wait until status-api shows each sandbox")
    demo.add_argument("--wait", type=float, default=30.0, help="seconds to wait for status-api")
    demo.set_defaults(run=_demo_fleet)
    ops_cli.register(sub)
    rebuild.add_commands(sub)
    reconcile.add_commands(sub)
    dlq.add_commands(sub)
    history.add_commands(sub)
    policy_cmd.add_commands(sub)
    api_key_cmd.add_commands(sub)
    simulate_cmd.add_commands(sub)
    return root


def main(
    argv: Sequence[str] | None = None, *, e2b_transport: httpx.AsyncBaseTransport | None = None
) -> None:
    """`e2b_transport` lets tests run the E2B calls against an in-process app."""
    args = parser().parse_args(argv)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per failure, no request log
    if e2b_transport is not None:
        args.transport = e2b_transport
    command = " ".join(filter(None, [args.command, getattr(args, "action", None)]))
    try:
        settings = load(Settings)
        args.run(args, settings)
    except (SettingsError, OSError, E2BApiError, OperatorError) as exc:
        print(f"sandboxctl {command}: {exc}", file=sys.stderr)
        sys.exit(1)
    except Exception as exc:  # the CLI's contract: one line, non-zero, never a traceback
        print(f"sandboxctl {command}: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
