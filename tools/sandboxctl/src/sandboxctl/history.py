"""`sandboxctl history prune`: what the projector does every hour, now, saying what it did: the
history's daily partitions made ahead, and those before HISTORY_RETENTION_DAYS dropped whole."""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC, datetime
from typing import Any

from sandboxctl.errors import OperatorError
from sandboxctl.settings import Settings


def _prune(args: argparse.Namespace, settings: Settings) -> None:
    import asyncpg

    from projector.adapters.history_partitions import Maintained, maintain

    async def run() -> Maintained | None:
        conn = await asyncpg.connect(settings.database_url)
        try:  # waits for a projector doing the same
            return await maintain(
                conn, datetime.now(UTC), settings.history_retention_days, wait=True
            )
        finally:
            await conn.close()

    done = asyncio.run(run())
    if done is None:  # not with wait=True; said plainly should that ever change
        raise OperatorError("another process holds the history's lock; try again")
    if args.json:
        print(
            json.dumps(
                {
                    "retentionDays": settings.history_retention_days,
                    "keptSince": done.since.isoformat() if done.since else None,
                    "dropped": list(done.dropped),
                    "created": list(done.created),
                    "deletedFromDefault": done.purged,
                }
            )
        )
        return
    days = settings.history_retention_days
    kept = f"since {done.since.isoformat()}" if done.since else "for ever"
    print(f"history kept {kept} (HISTORY_RETENTION_DAYS={days})")
    for name in done.dropped:
        print(f"dropped {name}")
    if not done.dropped:
        print("no partition old enough to drop")
    if done.purged:
        print(f"deleted {done.purged:,} facts before the window from the default partition")
    for name in done.created:
        print(f"created {name}")


def add_commands(sub: Any) -> None:
    history = sub.add_parser(
        "history", help="the PostgreSQL history (sandbox_events)"
    ).add_subparsers(dest="action", required=True)
    prune = history.add_parser(
        "prune",
        help="drop daily partitions older than HISTORY_RETENTION_DAYS (0: none), make the next"
        " days' ahead; prints what it did",
    )
    prune.add_argument("--json", action="store_true", help="one JSON object (keys in README)")
    prune.set_defaults(run=_prune)
