"""`sandboxctl reconcile`: one reconciliation pass against E2B's list, now."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from sandboxctl.settings import Settings


def _reconcile(args: argparse.Namespace, settings: Settings) -> None:
    from enforcer.reconciler.loop import reconcile_once

    result = asyncio.run(reconcile_once(settings, dry_run=args.dry_run))
    for fact in result.facts:
        print(f"{fact.sandbox_id} {fact.type} at {fact.occurred_at.isoformat()}")
    verb = "would publish" if args.dry_run else "published"
    print(
        f"{len(result.unknown)} unknown to us, {len(result.state_fixed)} state fixed,"
        f" {len(result.timeout_fixed)} timeouts fixed, {len(result.killed)} killed upstream;"
        f" {verb} {len(result.facts)} corrective facts"
    )


def add_commands(sub: Any) -> None:
    cmd = sub.add_parser(
        "reconcile",
        help="compare our state with E2B's list now and publish corrective facts",
    )
    cmd.add_argument("--dry-run", action="store_true", help="print the corrections only")
    cmd.set_defaults(run=_reconcile)
