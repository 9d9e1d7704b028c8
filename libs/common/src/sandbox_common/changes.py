"""The change feed: one Redis stream entry per read-model change, pushed to SSE clients.

Written by the projector (a status document changed, in the same Lua step as the document) and
by status-api (a pause warning); read by every status-api process. One place for the entry
shape, so writers (Lua scripts) and the reader agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ChangeKind(StrEnum):
    DOC = "doc"  # data: the StatusDoc JSON as the projector wrote it
    WARNING = "warning"  # data: a pause warning (status-api's PauseWarning JSON)
    # The whole read model was swapped (a replay, or a rebuild from PostgreSQL): no per-document
    # entries were written, so clients must be sent the current state afresh. Empty data.
    RESET = "reset"


# Field names of a stream entry (short: the stream holds tens of thousands of them).
KIND = "k"
PROJECT = "p"  # '' when the sandbox has no project
SANDBOX = "s"
REVISION = "r"  # the document revision the entry reflects
DATA = "d"


@dataclass(frozen=True, slots=True)
class Change:
    id: str  # the stream entry id ("<ms>-<seq>"), also the SSE event id
    kind: ChangeKind
    project_id: str | None
    sandbox_id: str
    revision: int
    data: bytes


def from_entry(entry_id: bytes | str, fields: dict[bytes, bytes]) -> Change | None:
    """None for an entry this version does not understand (skipped, never fatal)."""
    try:
        kind = ChangeKind(fields[KIND.encode()].decode())
        project = fields.get(PROJECT.encode(), b"").decode()
        return Change(
            id=entry_id.decode() if isinstance(entry_id, bytes) else entry_id,
            kind=kind,
            project_id=project or None,
            sandbox_id=fields[SANDBOX.encode()].decode(),
            revision=int(fields.get(REVISION.encode(), b"0")),
            data=fields[DATA.encode()],
        )
    except (KeyError, ValueError, UnicodeDecodeError):
        return None


def entry_position(entry_id: str) -> tuple[int, int]:
    """Stream ids order as (milliseconds, sequence); raises ValueError when malformed."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def lua_xadd(
    *,
    feed: str,
    max_length: str,
    kind: ChangeKind,
    project: str,
    sandbox: str,
    revision: str,
    data: str,
) -> str:
    """The Lua statement that appends one entry; the arguments are Lua expressions (KEYS[5],
    ARGV[2], ...). Approximate trimming keeps XADD O(1) and at least max_length entries."""
    return (
        f"redis.call('XADD', {feed}, 'MAXLEN', '~', {max_length}, '*', "
        f"'{KIND}', '{kind.value}', '{PROJECT}', {project}, '{SANDBOX}', {sandbox}, "
        f"'{REVISION}', {revision}, '{DATA}', {data})"
    )
