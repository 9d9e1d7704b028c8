"""What live clients must have been shown: every change of the feed, in order, per sandbox.

A fleet stream (admin) sends each change of the change feed as the projector wrote it, newest
revision per sandbox only (a repeat of a revision already shown is dropped), a killed sandbox as
`gone`. So once the system is quiet, what a client on any status-api process saw of a sandbox
must equal that sandbox's entries in the feed itself (read straight from Redis), one by one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable
from typing import Any, NamedTuple, cast

import msgspec

from sandbox_common.readmodel import Layout, Status, decode_doc
from sandbox_common.readmodel.feed import ChangeKind, from_entry
from tests.connected import redis_mode
from tests.connected.helpers import Event


class Shown(NamedTuple):
    """What a client is shown of one change of a sandbox."""

    event: str  # sandbox, gone
    status: str | None
    last_active_at: str | None
    status_changed_at: str | None


def _stamp(value: Any) -> str | None:
    return None if value is None else str(msgspec.to_builtins(value))


def shown_in_stream(events: Iterable[Event]) -> dict[str, list[Shown]]:
    """Per sandbox, what one client was sent (warnings left out)."""
    seen: dict[str, list[Shown]] = defaultdict(list)
    for e in events:
        if e.event == "sandbox":
            seen[e.data["sandboxId"]].append(
                Shown(
                    "sandbox", e.data["status"], e.data["lastActiveAt"], e.data["statusChangedAt"]
                )
            )
        elif e.event == "gone" and e.data.get("sandboxId"):
            seen[e.data["sandboxId"]].append(Shown("gone", None, None, None))
    return seen


async def in_feed(redis_url: str, sandboxes: Collection[str]) -> dict[str, list[Shown]]:
    """Per sandbox of `sandboxes`, what a client following the feed must be shown: its document
    entries of rising revision, in the order of its shard's stream."""
    layout = Layout()  # the services' default READ_MODEL_SHARDS
    client = redis_mode.client(redis_url)
    want: dict[str, list[Shown]] = defaultdict(list)
    try:
        for shard in layout.all:
            newest: dict[str, int] = {}
            entries = cast(
                list[tuple[bytes, dict[bytes, bytes]]], await client.xrange(layout.changes(shard))
            )
            for entry_id, fields in entries:
                change = from_entry(entry_id, fields, shard)
                if change is None or change.kind is not ChangeKind.DOC:
                    continue
                if change.sandbox_id not in sandboxes:
                    continue
                if change.revision <= newest.get(change.sandbox_id, -1):
                    continue
                newest[change.sandbox_id] = change.revision
                doc = decode_doc(change.data)
                want[change.sandbox_id].append(
                    Shown("gone", None, None, None)
                    if doc.status is Status.KILLED
                    else Shown(
                        "sandbox",
                        doc.status.value,
                        _stamp(doc.last_active_at),
                        _stamp(doc.status_changed_at),
                    )
                )
    finally:
        await client.aclose()
    return want


def differences(
    want: dict[str, list[Shown]], seen: dict[str, list[Shown]], sandboxes: Collection[str]
) -> list[str]:
    """The sandboxes whose changes a client was not shown exactly, one by one (at most 5)."""
    problems = [
        f"{sid}: feed {want.get(sid, [])} != shown {seen.get(sid, [])}"
        for sid in sorted(sandboxes)
        if want.get(sid, []) != seen.get(sid, [])
    ]
    return problems[:5] + ([f"... {len(problems) - 5} more"] if len(problems) > 5 else [])
