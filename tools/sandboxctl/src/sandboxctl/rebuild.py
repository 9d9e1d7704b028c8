"""`sandboxctl replay` and `sandboxctl rebuild-redis`: all read-model state from the topic, or
Redis from PostgreSQL. Progress goes to stderr, the result to stdout."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from sandbox_common import topics
from sandboxctl.settings import Settings


def _replay(args: argparse.Namespace, settings: Settings) -> None:
    from projector.replay.run import Replay

    state_topic = args.state_topic if args.from_snapshot else None
    replay = Replay(settings, args.topic, state_topic=state_topic)
    report = asyncio.run(replay.run(verify=args.verify))
    offsets = " ".join(f"{p}:{o}" for p, o in report.offsets.items())
    if not args.verify:
        swapped, kept, removed = report.redis
        print(f"replayed {report.line()}")
        print(
            f"swapped in: PostgreSQL at offsets {offsets}; Redis {swapped:,} documents"
            f" ({kept:,} newer live ones kept, {removed:,} stale removed)"
        )
        return
    for line in report.differences:
        print(line)
    print(f"verified {report.line()} at offsets {offsets}")
    if report.differs:
        what = " and ".join(
            str(d.name).lower() for d in type(report.differs) if d in report.differs
        )
        print(f"{len(report.differences):,} difference(s): {what}", file=sys.stderr)
        sys.exit(int(report.differs))
    print("rebuilt and live state are identical")


def _rebuild_redis(args: argparse.Namespace, settings: Settings) -> None:
    async def run() -> tuple[int, int, int]:
        import asyncpg

        from projector.adapters.postgres_snapshot import locked_snapshot
        from projector.read_model_rebuild import rebuild_read_model
        from sandbox_common.readmodel.reader import ReadModelReader
        from sandbox_common.readmodel.shadow import ShadowWriter

        conn = await asyncpg.connect(settings.database_url)
        client = settings.redis()
        try:
            async with locked_snapshot(conn) as snapshot:
                if snapshot is None:
                    raise RuntimeError("a replay or rebuild holds the lock; try again later")
                return await rebuild_read_model(
                    snapshot,
                    ShadowWriter(
                        client, settings.killed_tombstone_ttl_seconds, settings.redis_layout()
                    ),
                    ReadModelReader(client, settings.redis_layout()),
                    settings.deadline_rule(),
                    by="sandboxctl",
                )
        finally:
            await client.aclose()
            await conn.close()

    swapped, kept, removed = asyncio.run(run())
    print(
        f"Redis rebuilt from PostgreSQL: {swapped:,} documents"
        f" ({kept:,} newer live ones kept, {removed:,} stale removed)"
    )


def add_commands(sub: Any) -> None:
    replay = sub.add_parser(
        "replay",
        help="rebuild PostgreSQL and Redis from offset 0 of the topic, then swap them in",
        description=(
            "Folds every record of the topic into shadow tables and keys while the live "
            "projector keeps serving, then swaps them in atomically. Safe to interrupt and "
            "rerun. --verify changes nothing: it prints each difference between the rebuilt "
            "and the live state; exit 0 identical, 2 PostgreSQL differs, 4 Redis differs, "
            "6 both, 1 error. --from-snapshot starts from the compacted state topic and reads "
            "only the tail of the lifecycle (time follows the fleet, not the history); the "
            "history table is then kept and the tail's facts added to it."
        ),
    )
    replay.add_argument("--verify", action="store_true", help="compare only, swap nothing")
    replay.add_argument("--topic", default=topics.LIFECYCLE, help="topic to replay")
    replay.add_argument(
        "--from-snapshot",
        action="store_true",
        help="start from the states in --state-topic, then the topic's tail",
    )
    replay.add_argument(
        "--state-topic", default=topics.STATE, help="the snapshot topic (with --from-snapshot)"
    )
    replay.set_defaults(run=_replay)
    rebuild = sub.add_parser(
        "rebuild-redis", help="rebuild the Redis read model from PostgreSQL (after a Redis loss)"
    )
    rebuild.set_defaults(run=_rebuild_redis)
