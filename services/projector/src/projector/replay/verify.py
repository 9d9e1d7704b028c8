"""Pure comparison of a rebuilt read model with the live one: one line per difference.

What a rebuild cannot reproduce is left out: revisions and write times, and killed tombstones
in Redis (their expiry depends on when each was written; PostgreSQL keeps them and is compared).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from enum import IntFlag

import msgspec

from projector.domain import SandboxState
from sandbox_common.readmodel import Status, StatusDoc


class Differs(IntFlag):
    """The exit code of `sandboxctl replay --verify`: which read model differs."""

    NOTHING = 0
    POSTGRES = 2
    REDIS = 4


def compare_states(
    rebuilt: Mapping[str, SandboxState], live: Mapping[str, SandboxState]
) -> list[str]:
    out = []
    for sid in sorted(rebuilt.keys() | live.keys()):
        a, b = rebuilt.get(sid), live.get(sid)
        if a is None or b is None:
            out.append(f"postgres sandbox {sid}: {'missing live' if b is None else 'only live'}")
            continue
        out.extend(
            f"postgres sandbox {sid}: {f.name} rebuilt={getattr(a, f.name)!r}"
            f" live={getattr(b, f.name)!r}"
            for f in fields(SandboxState)
            if getattr(a, f.name) != getattr(b, f.name)
        )
    return out


def compare_history(rebuilt: set[str], live: set[str]) -> list[str]:
    return [f"postgres history: event {e} missing live" for e in sorted(rebuilt - live)] + [
        f"postgres history: event {e} only live" for e in sorted(live - rebuilt)
    ]


def _comparable(doc: StatusDoc) -> StatusDoc:
    return msgspec.structs.replace(doc, revision=0, updated_at=None)


def compare_docs(expected: Mapping[str, StatusDoc], live: Mapping[str, StatusDoc]) -> list[str]:
    served = {k: v for k, v in expected.items() if v.status is not Status.KILLED}
    actual = {k: v for k, v in live.items() if v.status is not Status.KILLED}
    out = []
    for sid in sorted(served.keys() | actual.keys()):
        a, b = served.get(sid), actual.get(sid)
        if a is None or b is None:
            out.append(f"redis doc {sid}: {'missing live' if b is None else 'only live'}")
            continue
        a, b = _comparable(a), _comparable(b)
        out.extend(
            f"redis doc {sid}: {name} rebuilt={getattr(a, name)!r} live={getattr(b, name)!r}"
            for name in a.__struct_fields__
            if getattr(a, name) != getattr(b, name)
        )
    return out


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
