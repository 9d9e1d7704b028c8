"""Pure comparison of a rebuilt read model with the live one: one line per difference.

What a rebuild cannot reproduce is left out: revisions and write times, and killed tombstones
in Redis (their expiry depends on when each was written; PostgreSQL keeps them and is compared).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from datetime import datetime
from enum import IntFlag
from typing import Any

import msgspec

from projector.domain import SandboxState
from sandbox_common.readmodel import Status, StatusDoc


class Differs(IntFlag):
    """The exit code of `sandboxctl replay --verify`: which read model differs."""

    NOTHING = 0
    POSTGRES = 2
    REDIS = 4


def _by_field(
    what: str, rebuilt: Mapping[str, Any], live: Mapping[str, Any], names: Sequence[str]
) -> list[str]:
    """One line per record only one side has, and per field that differs."""
    out = []
    for key in sorted(rebuilt.keys() | live.keys()):
        a, b = rebuilt.get(key), live.get(key)
        if a is None or b is None:
            out.append(f"{what} {key}: {'missing live' if b is None else 'only live'}")
            continue
        out.extend(
            f"{what} {key}: {n} rebuilt={getattr(a, n)!r} live={getattr(b, n)!r}"
            for n in names
            if getattr(a, n) != getattr(b, n)
        )
    return out


def compare_states(
    rebuilt: Mapping[str, SandboxState], live: Mapping[str, SandboxState]
) -> list[str]:
    return _by_field("postgres sandbox", rebuilt, live, [f.name for f in fields(SandboxState)])


def compare_history(
    rebuilt: set[tuple[str, datetime]], live: set[tuple[str, datetime]]
) -> list[str]:
    """History rows by (event id, occurred_at), the live table's key."""

    def line(key: tuple[str, datetime], where: str) -> str:
        return f"postgres history: event {key[0]} at {key[1].isoformat()} {where}"

    return [line(k, "missing live") for k in sorted(rebuilt - live)] + [
        line(k, "only live") for k in sorted(live - rebuilt)
    ]


def _comparable(doc: StatusDoc) -> StatusDoc:
    return msgspec.structs.replace(doc, revision=0, updated_at=None)


def compare_docs(expected: Mapping[str, StatusDoc], live: Mapping[str, StatusDoc]) -> list[str]:
    def served(docs: Mapping[str, StatusDoc]) -> dict[str, StatusDoc]:
        return {k: _comparable(v) for k, v in docs.items() if v.status is not Status.KILLED}

    return _by_field("redis doc", served(expected), served(live), StatusDoc.__struct_fields__)


def compare_scores(
    index: str, expected: Mapping[str, float], live: Mapping[str, float]
) -> list[str]:
    out = []
    for sid in sorted(expected.keys() | live.keys()):
        a, b = expected.get(sid), live.get(sid)
        if a is None or b is None or abs(a - b) > 0.002:
            out.append(f"redis {index} {sid}: rebuilt={a} live={b}")
    return out


def compare_served(expected: Mapping[str, str], live: Mapping[str, str | None]) -> list[str]:
    """project -> the sandbox status-api serves for it (None: 404)."""
    return [
        f"redis project {p}: serves rebuilt={expected.get(p)} live={live.get(p)}"
        for p in sorted(expected.keys() | live.keys())
        if expected.get(p) != live.get(p)
    ]


def compare_policies(
    rebuilt: Mapping[str, tuple[Any, ...]], live: Mapping[str, tuple[Any, ...]]
) -> list[str]:
    """Policy rows (subject -> row as pg_shadow.policy_compared gives it): whole rows."""
    return [
        f"policy {subject}: rebuilt={rebuilt.get(subject)!r} live={live.get(subject)!r}"
        for subject in sorted(rebuilt.keys() | live.keys())
        if rebuilt.get(subject) != live.get(subject)
    ]
