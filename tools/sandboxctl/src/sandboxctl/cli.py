"""`sandboxctl`: the operator's command line. Exit 0 on success, else 1 with a one-line reason."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence

from sandbox_common.settings import Settings, SettingsError


def _token(args: argparse.Namespace, settings: Settings) -> None:
    from status_api.auth import mint

    settings.require("status_api_jwt_secret")
    if not args.project and not args.admin:
        raise SettingsError("give --project ID (repeatable) and/or --admin")
    print(mint(settings.status_api_jwt_secret, projects=args.project or [], admin=args.admin,
               ttl_seconds=args.ttl, now=int(time.time()), subject=args.subject))


def _migrate(args: argparse.Namespace, settings: Settings) -> None:
    from projector.adapters.schema import migrate

    applied = asyncio.run(migrate(settings.database_url))
    print(f"applied: {', '.join(applied)}" if applied else "schema up to date")


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
