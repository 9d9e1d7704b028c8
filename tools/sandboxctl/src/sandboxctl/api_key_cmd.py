"""`sandboxctl api-key create|list|revoke`: project API keys for servers (status-api's
`X-API-Key`), straight in PostgreSQL (DATABASE_URL): a key is a credential, not a lifecycle fact.
`create` prints the key once; only its digest is stored, so a lost key is revoked and replaced,
never shown again."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sandbox_common.api_key_rows import ApiKeyRows, StoredKey
from sandbox_common.api_keys import HEADER, issue
from sandboxctl.errors import OperatorError
from sandboxctl.settings import Settings

_T = TypeVar("_T")


def _with_rows(settings: Settings, work: Callable[[ApiKeyRows], Awaitable[_T]]) -> _T:
    import asyncpg

    async def run() -> _T:
        try:
            conn = await asyncpg.connect(settings.database_url, timeout=10)
        except (OSError, asyncpg.PostgresError) as exc:
            raise OperatorError(f"PostgreSQL (DATABASE_URL) unreachable: {exc}") from exc
        try:
            return await work(ApiKeyRows(conn))
        except asyncpg.UndefinedTableError as exc:
            raise OperatorError("no api_keys table: run `sandboxctl migrate` first") from exc
        finally:
            await conn.close()

    return asyncio.run(run())


def _shown(key: StoredKey) -> dict[str, Any]:
    return {
        "keyId": key.key_id,
        "projectId": key.project_id,
        "name": key.name,
        "createdAt": key.created_at.isoformat(),
        "revokedAt": key.revoked_at.isoformat() if key.revoked_at else None,
    }


def _create(args: argparse.Namespace, settings: Settings) -> None:
    if not args.project:
        raise OperatorError("--project must name a project")
    issued = issue()
    stored = _with_rows(settings, lambda rows: rows.create(issued, args.project, args.name))
    if args.json:
        print(json.dumps({**_shown(stored), "key": issued.key}))
        return
    print(issued.key)
    print(
        f"API key {stored.key_id} for project {stored.project_id}: send it as {HEADER}. "
        "It is shown this once (only its digest is stored)."
    )


def _list(args: argparse.Namespace, settings: Settings) -> None:
    keys = _with_rows(settings, lambda rows: rows.of_project(args.project))
    if args.json:
        print(json.dumps([_shown(k) for k in keys]))
        return
    if not keys:
        print("no API keys" + (f" for project {args.project}" if args.project else ""))
    for k in keys:
        state = f"revoked {k.revoked_at.isoformat()}" if k.revoked_at else "active"
        name = f" ({k.name})" if k.name else ""
        print(f"{k.key_id}  {k.project_id}{name}  created {k.created_at.isoformat()}  {state}")


def _revoke(args: argparse.Namespace, settings: Settings) -> None:
    stored = _with_rows(settings, lambda rows: rows.revoke(args.key_id))
    if stored is None:
        raise OperatorError(f"no API key {args.key_id}")
    assert stored.revoked_at is not None
    print(
        f"API key {stored.key_id} of project {stored.project_id} revoked at "
        f"{stored.revoked_at.isoformat()} (status-api refuses it within 30 s)"
    )


def add_commands(sub: Any) -> None:
    keys = sub.add_parser(
        "api-key", help=f"project API keys for servers ({HEADER}; PostgreSQL, DATABASE_URL)"
    ).add_subparsers(dest="action", required=True)
    create = keys.add_parser("create", help="a new key for a project, printed once")
    create.add_argument("--project", required=True, help="the project the key acts for")
    create.add_argument("--name", help="what the key is for (shown by list)")
    create.add_argument("--json", action="store_true", help="one JSON object with the key")
    create.set_defaults(run=_create)
    listing = keys.add_parser("list", help="keys (never the keys themselves), oldest first")
    listing.add_argument("--project", help="only this project's")
    listing.add_argument("--json", action="store_true", help="a JSON array")
    listing.set_defaults(run=_list)
    revoke = keys.add_parser("revoke", help="stop a key working (within 30 s everywhere)")
    revoke.add_argument("key_id", help="the key's id (the 16 hex after sbk_)")
    revoke.set_defaults(run=_revoke)
