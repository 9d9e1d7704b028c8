"""The operator's subcommands on our own infrastructure: `topics create|describe`, `status` and
`init` (topics, then migrations: the one-shot job of docker-compose and the Helm hook).

Exit codes: 0 done; 1 could not do it (one line on stderr, from cli.main); 3 done, but found
problems (`topics describe`, `status`), so scripts and probes can tell the three apart. Not 2:
argparse exits 2 on a usage error, and a mistyped option must not read as "problems found".
`--json` prints one JSON object instead of the lines (keys in README); the exit code is the same.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from sandbox_common import topics
from sandboxctl import fleet, topic_specs, topics_cmd
from sandboxctl.fleet_stores import read_snapshot
from sandboxctl.kafka_admin import KafkaAdmin
from sandboxctl.settings import Settings

PROBLEMS_FOUND = 3


def _specs() -> list[topic_specs.TopicSpec]:
    return topic_specs.wanted(os.environ)


def _finish(lines: Sequence[str], problems: Sequence[str]) -> None:
    for line in lines:
        print(line)
    for problem in problems:
        print(f"PROBLEM: {problem}")
    if problems:
        sys.exit(PROBLEMS_FOUND)


def _finish_json(document: dict[str, Any], problems: Sequence[str]) -> None:
    print(json.dumps(document, indent=2))
    if problems:
        sys.exit(PROBLEMS_FOUND)


def _topics_create(args: argparse.Namespace, settings: Settings) -> None:
    specs = _specs()

    async def run() -> list[str]:
        async with KafkaAdmin(settings.kafka_connection(), args.timeout) as admin:
            return await topics_cmd.create(admin, specs)

    _finish(asyncio.run(run()), [])


def _topics_describe(args: argparse.Namespace, settings: Settings) -> None:
    specs = _specs()
    groups = {
        settings.projector_group_id: topics.LIFECYCLE,
        settings.actuator_group_id: topics.COMMANDS,
    }

    async def run() -> topics_cmd.Description:
        async with KafkaAdmin(settings.kafka_connection(), args.timeout) as admin:
            return await topics_cmd.inspect(admin, specs, groups)

    found = asyncio.run(run())
    if args.json:
        _finish_json(topics_cmd.as_json(found), found.problems)
    else:
        _finish(topics_cmd.text(found), found.problems)


def _status(args: argparse.Namespace, settings: Settings) -> None:
    snapshot = asyncio.run(read_snapshot(settings))
    lines, problems = fleet.report(snapshot, settings.enforcer_stuck_after_seconds)
    if args.json:
        _finish_json(fleet.as_json(snapshot, problems), problems)
    else:
        _finish(lines, problems)


def _init(args: argparse.Namespace, settings: Settings) -> None:
    from projector.adapters.schema import migrate

    _topics_create(args, settings)
    applied = asyncio.run(migrate(settings.database_url))
    print(f"migrations applied: {', '.join(applied)}" if applied else "schema up to date")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    def with_timeout(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--timeout", type=float, default=10.0, help="seconds per Kafka request")
        return p

    def with_json(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--json", action="store_true", help="one JSON object (keys in README)")
        return p

    sizing = (
        "sizes from LIFECYCLE_PARTITIONS (12), COMMANDS_PARTITIONS (12), DLQ_PARTITIONS (3), "
        "KAFKA_REPLICATION_FACTOR (1), KAFKA_MIN_INSYNC_REPLICAS (1)"
    )
    kafka = sub.add_parser("topics", help="the project's Kafka topics").add_subparsers(
        dest="action", required=True
    )
    create = kafka.add_parser("create", help=f"create missing topics (idempotent); {sizing}")
    with_timeout(create).set_defaults(run=_topics_create)
    describe = kafka.add_parser(
        "describe",
        help=f"partitions, settings, records and consumer lag; exit {PROBLEMS_FOUND} on problems",
    )
    with_json(with_timeout(describe)).set_defaults(run=_topics_describe)
    status = sub.add_parser(
        "status",
        help=f"fleet summary from PostgreSQL and Redis; exit {PROBLEMS_FOUND} on problems",
    )
    with_json(status).set_defaults(run=_status)
    init = sub.add_parser("init", help="topics create, then migrate (deploy-time one-shot job)")
    with_timeout(init).set_defaults(run=_init)
