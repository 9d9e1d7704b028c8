"""`sandboxctl`: the operator's command line. Exit 0 on success, else 1 with a one-line reason."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from sandbox_common.settings import Settings, SettingsError


def _token(args: argparse.Namespace, settings: Settings) -> None:
    from status_api.auth import mint

    settings.require("status_api_jwt_secret")
    if not args.project and not args.admin:
        raise SettingsError("give --project ID (repeatable) and/or --admin")
    print(
        mint(
            settings.status_api_jwt_secret,
            projects=args.project or [],
            admin=args.admin,
            ttl_seconds=args.ttl,
            now=int(time.time()),
            subject=args.subject,
        )
    )


def _migrate(args: argparse.Namespace, settings: Settings) -> None:
    from projector.adapters.schema import migrate

    applied = asyncio.run(migrate(settings.database_url))
    print(f"applied: {', '.join(applied)}" if applied else "schema up to date")


def _send_webhook(args: argparse.Namespace, settings: Settings) -> None:
    import httpx

    from sandbox_common import e2b

    settings.require("e2b_webhook_secret")
    sandbox_id = args.sandbox or f"sbx-{args.project}"
    payload = e2b.build_webhook(
        event_id=str(uuid.uuid4()),
        event_type=f"sandbox.lifecycle.{args.type}",
        sandbox_id=sandbox_id,
        timestamp=datetime.now(UTC),
        metadata={settings.project_metadata_key: args.project},
        version=args.payload_version,
    )
    body = json.dumps(payload).encode()
    url = f"{args.ingest_url.rstrip('/')}/api/webhooks/e2b"
    response = httpx.post(
        url, content=body, headers=e2b.signed_headers(settings.e2b_webhook_secret, body)
    )
    print(f"{response.status_code} {response.text}")
    if response.status_code >= 300:
        raise RuntimeError(f"ingest answered {response.status_code}")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="sandboxctl", description=__doc__)
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
    return root


def main(argv: Sequence[str] | None = None) -> None:
    args = parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        args.run(args, settings)
    except (SettingsError, OSError) as exc:
        print(f"sandboxctl {args.command}: {exc}", file=sys.stderr)
        sys.exit(1)
    except Exception as exc:  # the CLI's contract: one line, non-zero, never a traceback
        print(f"sandboxctl {args.command}: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
