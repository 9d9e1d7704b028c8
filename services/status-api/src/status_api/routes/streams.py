"""Server-sent events: a project's sandbox (for its frontend) and the whole fleet (admin).

On connect the current state is sent, then every change as the projector writes it. A client
that reconnects with Last-Event-ID gets the changes it missed from the feed instead (read a page
at a time, at most 10,000), or a fresh snapshot when they cannot all be sent: the feed no longer
reaches back that far, or the client is further behind than that. Keep-alive comments hold
proxies open. Streams are capped per token and per process, and end when their token expires.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from litestar import Request, get
from litestar.datastructures import State
from litestar.exceptions import (
    NotAuthorizedException,
    ServiceUnavailableException,
    TooManyRequestsException,
)
from litestar.response import ServerSentEvent, ServerSentEventMessage

from sandbox_common.readmodel import Status, StatusDoc, decode_doc
from sandbox_common.readmodel.feed import Change, ChangeKind, Cursor, entry_position
from status_api import metrics
from status_api.access import StreamPass
from status_api.change_hub import Subscription
from status_api.deadline_warnings import watches
from status_api.deps import Deps
from status_api.routes.sandboxes import RAISES, SECURITY
from status_api.stream_slots import StreamsFullError
from status_api.views import (
    DeleteWarning,
    Gone,
    LifetimeWarning,
    PauseWarning,
    Reauthenticate,
    Snapshot,
    sandbox_status,
)

_encoder = msgspec.json.Encoder()
_pause_warning = msgspec.json.Decoder(PauseWarning)
_lifetime_warning = msgspec.json.Decoder(LifetimeWarning)
_delete_warning = msgspec.json.Decoder(DeleteWarning)
_WARNINGS = frozenset({ChangeKind.WARNING, ChangeKind.LIFETIME, ChangeKind.DELETE})


def _warned_about(change: Change) -> tuple[str, datetime]:
    """(sandbox, deadline) of a warning on the feed."""
    if change.kind is ChangeKind.LIFETIME:
        lifetime = _lifetime_warning.decode(change.data)
        return lifetime.sandbox_id, lifetime.max_lifetime_at
    if change.kind is ChangeKind.DELETE:
        delete = _delete_warning.decode(change.data)
        return delete.sandbox_id, delete.delete_at
    pause = _pause_warning.decode(change.data)
    return pause.sandbox_id, pause.idle_deadline_at


# How soon a browser's EventSource reconnects after the stream ends.
_RETRY_MS = 2000

_STREAM_DOC = (
    "Server-sent events. `sandbox`: the status (same JSON as the GET route); `pauseImminent`: "
    "{sandboxId, projectId, idleDeadlineAt, secondsLeft}, once per idle deadline; "
    "`lifetimeEnding`: {sandboxId, projectId, maxLifetimeAt, secondsLeft}, once per run, before "
    "E2B ends it whatever the activity; `deleteImminent`: {sandboxId, projectId, deleteAt, "
    "secondsLeft}, before a project policy deletes a paused sandbox (resume it to keep it); "
    "`gone`: no live sandbox (killed, or none yet); "
    "`snapshot`: {projectId, reason}, the missed changes cannot be sent one by one (a resume "
    "too far back, a rebuilt read model) and the current state follows. Each event's id "
    "resumes the stream (Last-Event-ID, or `?lastEventId=`). `reauthenticate`: {expiredAt}, "
    "the token expired and the stream ends: open it again with a new one. "
    "A browser's EventSource cannot set headers: pass `?ticket=` from POST /api/stream-tickets "
    "(`?access_token=` still takes a non-admin token, but URLs end up in logs)."
)
# 429 also when the token has its maximum of streams open, 503 when the server has.
_STREAM_RAISES = [*RAISES, ServiceUnavailableException]


def _comment(text: str) -> ServerSentEventMessage:
    # data=None: Litestar would otherwise add an empty `data:` line, which clients parse as an
    # (empty, not JSON) event.
    return ServerSentEventMessage(comment=text, data=None)


class _Sender:
    """Turns feed changes into SSE messages for one client, newest revision per sandbox only.
    Each message's id is the client's cursor (one position per feed shard) after it."""

    def __init__(self, deps: Deps, project_id: str | None) -> None:
        self._deps = deps
        self._project_id = project_id
        # The sandbox a project's client was last shown live: the feed's shards are merged in
        # no global order, so the kill of a project's old sandbox may come after its new one.
        self._shown: str | None = None
        self._revisions: dict[str, int] = {}
        # Event names by kind (the windows are each project's: deps.warn).
        self._watches = watches(deps.warn.settings)
        # (kind, sandbox, deadline) warnings this client was given: a warning in the snapshot
        # and the same one from the feed are one warning.
        self._warned: set[tuple[ChangeKind, str, datetime]] = set()
        self.cursor = deps.hub.head

    def snapshot(
        self, doc: StatusDoc | None, project_id: str | None, event_id: str
    ) -> list[ServerSentEventMessage]:
        if doc is None or doc.status is Status.KILLED:
            return [self._gone(project_id, doc.sandbox_id if doc else None, event_id)]
        self._revisions[doc.sandbox_id] = doc.revision
        messages = [self._status(doc, event_id)]
        now = self._deps.clock()
        for watch in watches(self._deps.warn.windows(doc.project_id)):
            warning = watch.warning(doc, now)
            deadline = watch.deadline(doc)
            if warning is not None and deadline is not None:
                self._warned.add((watch.kind, doc.sandbox_id, deadline))
                messages.append(self._message(watch.event, _encoder.encode(warning), event_id))
        return messages

    def forget(self) -> None:
        """After a reset: every sandbox's next document is news again."""
        self._revisions.clear()
        self._warned.clear()

    def start_at(self, cursor: Cursor) -> None:
        self.cursor = cursor

    def advance(self, change: Change) -> str | None:
        """The event id after `change`, or None when this client already had it (backlog and
        live overlap)."""
        moved = self.cursor.moved(change.shard, entry_position(change.id))
        if moved is self.cursor:
            return None
        self.cursor = moved
        return moved.encode()

    def change(self, change: Change) -> ServerSentEventMessage | None:
        event_id = self.advance(change)
        if event_id is None or change.kind is ChangeKind.RESET:
            return None  # a reset is handled by the stream (it needs a read)
        if change.kind in _WARNINGS:
            return self._warning(change, event_id)
        if change.revision <= self._revisions.get(change.sandbox_id, -1):
            return None  # older than what this client was shown
        self._revisions[change.sandbox_id] = change.revision
        doc = decode_doc(change.data)
        if doc.status is Status.KILLED:
            if self._project_id is not None and self._shown not in (None, doc.sandbox_id):
                return None  # the project has moved on to another sandbox already
            return self._gone(doc.project_id, doc.sandbox_id, event_id)
        return self._status(doc, event_id)

    def _warning(self, change: Change, event_id: str) -> ServerSentEventMessage | None:
        key = (change.kind, *_warned_about(change))
        if key in self._warned:
            return None
        self._warned.add(key)
        event = next(w.event for w in self._watches if w.kind is change.kind)
        return self._message(event, change.data, event_id)

    def _status(self, doc: StatusDoc, event_id: str) -> ServerSentEventMessage:
        self._shown = doc.sandbox_id
        status = sandbox_status(doc, self._deps.clock(), self._deps.warn.windows(doc.project_id))
        return self._message("sandbox", _encoder.encode(status), event_id)

    def _gone(
        self, project_id: str | None, sandbox_id: str | None, event_id: str
    ) -> ServerSentEventMessage:
        self._shown = None
        body = _encoder.encode(Gone(project_id=project_id, sandbox_id=sandbox_id))
        return self._message("gone", body, event_id)

    @staticmethod
    def _message(event: str, data: bytes, event_id: str) -> ServerSentEventMessage:
        metrics.SSE_EVENTS.labels(event=event).inc()
        return ServerSentEventMessage(data=data.decode(), event=event, id=event_id)


@dataclass(frozen=True)
class _Client:
    sub: Subscription
    sender: _Sender
    ends_at: float  # epoch seconds: its token's expiry
    kind: str  # project, fleet


def _reauthenticate(expired_at: float) -> ServerSentEventMessage:
    metrics.SSE_EVENTS.labels(event="reauthenticate").inc()
    # No id: the client resumes from the last change it was sent.
    body = Reauthenticate(expired_at=datetime.fromtimestamp(expired_at, UTC))
    return ServerSentEventMessage(data=_encoder.encode(body).decode(), event="reauthenticate")


async def follow(
    deps: Deps, client: _Client, first: list[ServerSentEventMessage]
) -> AsyncIterator[ServerSentEventMessage]:
    sub, sender = client.sub, client.sender
    metrics.SSE_CLIENTS.labels(stream=client.kind).inc()
    try:
        for message in first:
            yield message
        while not sub.overflowed:
            left = client.ends_at - deps.clock().timestamp()
            if left <= 0:
                # A stream outliving its token would let a revoked user watch on for good.
                yield _reauthenticate(client.ends_at)
                return
            if sub.queue.empty():
                try:
                    change = await asyncio.wait_for(
                        sub.queue.get(), timeout=min(deps.sse_keepalive_seconds, left)
                    )
                except TimeoutError:
                    yield _comment("keep-alive")
                    continue
            else:  # no timer and no task per change while changes are queued
                change = sub.queue.get_nowait()
            if change.kind is ChangeKind.RESET:
                # The read model was swapped wholesale: the current state, afresh.
                event_id = sender.advance(change)
                if event_id is None:
                    continue
                sender.forget()
                reason = Snapshot.REBUILD
                for message in await fresh(deps, sender, sub.project_id, event_id, reason):
                    yield message
                continue
            live = sender.change(change)
            if live is not None:
                yield live
        # Fell too far behind: end the stream; EventSource reconnects and catches up.
    finally:
        metrics.SSE_CLIENTS.labels(stream=client.kind).dec()


async def fresh(
    deps: Deps, sender: _Sender, project_id: str | None, event_id: str, reason: str
) -> list[ServerSentEventMessage]:
    """The current state in place of changes the client cannot be sent one by one."""
    metrics.SSE_SNAPSHOTS.labels(reason=reason).inc()
    marker = _encoder.encode(Snapshot(project_id=project_id, reason=reason)).decode()
    if project_id is None:
        # The fleet stream has no snapshot: its client (the dashboard) reloads the list.
        return [ServerSentEventMessage(data=marker, event="reset", id=event_id)]
    first = ServerSentEventMessage(data=marker, event="snapshot", id=event_id)
    return [first, *sender.snapshot(await deps.reader.by_project(project_id), project_id, event_id)]


async def opening(
    deps: Deps, request: Request[Any, Any, State], sender: _Sender, project_id: str | None
) -> list[ServerSentEventMessage]:
    """What a client gets first: the changes it missed, or the current state."""
    # Taken before anything is read: the subscription (already open) brings every change after
    # it, and a snapshot read now reflects at least every change up to it.
    head = deps.hub.head
    sender.start_at(head)
    resume = request.headers.get("last-event-id") or request.query_params.get("lastEventId")
    if resume:
        # An id from before the feed was sharded (or of another shard count) is not ours:
        # such a client gets a snapshot, like one too far behind.
        resume_at = deps.hub.cursor(resume)
        missed = None if resume_at is None else await deps.hub.since(resume_at, project_id, head)
        if missed is not None and all(c.kind is not ChangeKind.RESET for c in missed):
            sender.start_at(resume_at or head)
            messages = [m for m in map(sender.change, missed) if m is not None]
            # Every entry up to `head` is sent or did not concern this client.
            sender.start_at(sender.cursor.joined(head))
            return messages or [_comment("up to date")]
        # Part of what it missed is out of reach: the whole current state instead of a gap.
        return await fresh(deps, sender, project_id, head.encode(), Snapshot.RESUME)
    if project_id is None:
        return [_comment("fleet stream from here")]
    return sender.snapshot(await deps.reader.by_project(project_id), project_id, head.encode())


async def admit(
    deps: Deps, request: Request[Any, Any, State], project_id: str | None
) -> StreamPass:
    """Who opens this stream (None: the fleet): a stream ticket, else the bearer token."""
    ticket = request.query_params.get("ticket")
    if ticket is None:
        admitted = deps.gate.stream_pass(request)
    else:
        found = await deps.tickets.redeem(ticket)
        if found is None:
            metrics.REFUSED.labels(reason="unauthenticated").inc()
            raise NotAuthorizedException(detail="unknown, used or expired stream ticket")
        admitted = found
    deps.gate.let_stream(admitted.principal, project_id)
    return admitted


def _slot(deps: Deps, holder: str) -> Callable[[], None]:
    try:
        return deps.slots.take(holder)
    except StreamsFullError as exc:
        metrics.REFUSED.labels(reason="streams_per_token" if exc.per_token else "streams").inc()
        refusal = TooManyRequestsException if exc.per_token else ServiceUnavailableException
        raise refusal(detail=str(exc), headers={"Retry-After": str(exc.retry_after)}) from exc


def stream(
    deps: Deps,
    request: Request[Any, Any, State],
    project_id: str | None,
    kind: str,
    admitted: StreamPass,
) -> ServerSentEvent:
    """A project's stream, or the fleet's (project_id None), for a caller already let in."""
    release = _slot(deps, admitted.holder)
    sender = _Sender(deps, project_id)

    async def events() -> AsyncIterator[ServerSentEventMessage]:
        try:
            # Subscribed before the snapshot is read: no change falls between the two.
            with deps.hub.subscribe(project_id) as sub:
                first = await opening(deps, request, sender, project_id)
                client = _Client(sub, sender, admitted.expires_at, kind)
                async for message in follow(deps, client, first):
                    yield message
        finally:
            release()

    body = events()
    # A body that never starts (the client left first) never runs its `finally`: the slot
    # comes back when the generator is collected then.
    weakref.finalize(body, release)
    return ServerSentEvent(body, retry_duration=_RETRY_MS, headers=_NO_BUFFERING)


@get(
    "/api/projects/{project_id:str}/sandbox/stream",
    security=SECURITY,
    summary="Live status of a project's sandbox (server-sent events)",
    description=_STREAM_DOC,
    raises=_STREAM_RAISES,
)
async def project_stream(
    request: Request[Any, Any, State], project_id: str, deps: Deps
) -> ServerSentEvent:
    admitted = await admit(deps, request, project_id)
    return stream(deps, request, project_id, "project", admitted)


@get(
    "/api/sandboxes/stream",
    security=SECURITY,
    summary="Live changes of the whole fleet (admin, server-sent events)",
    description=_STREAM_DOC + " No snapshot: list the fleet with GET /api/sandboxes.",
    raises=_STREAM_RAISES,
)
async def fleet_stream(request: Request[Any, Any, State], deps: Deps) -> ServerSentEvent:
    admitted = await admit(deps, request, None)
    return stream(deps, request, None, "fleet", admitted)


HANDLERS = [project_stream, fleet_stream]

# nginx and other proxies buffer responses by default, which would hold events back.
_NO_BUFFERING = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
