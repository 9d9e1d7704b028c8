"""Operator questions answered from PostgreSQL: a sandbox's history ("why was it paused?",
"why won't it pause?") and the fleet with counts by status (admin)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from litestar import Request, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.exceptions import NotFoundException, ValidationException
from litestar.params import Parameter

from sandbox_common.policies import NO_POLICIES, PolicyBook
from sandbox_common.readmodel import DeadlineRule, Status, to_doc
from status_api import metrics
from status_api.adapters.postgres import FleetRow, HistoryRow
from status_api.deps import Deps
from status_api.routes.sandboxes import RAISES, SECURITY
from status_api.views import FleetPage, FleetSandbox, HistoryEvent, HistoryPage, fleet_sandbox


def encode_cursor(*parts: str) -> str:
    return base64.urlsafe_b64encode("\x1f".join(parts).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, parts: int) -> list[str]:
    """400 for a cursor this service did not hand out."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValidationException(detail="cursor is not one this API returned") from exc
    fields = raw.split("\x1f")
    if len(fields) != parts or "\x00" in raw:
        raise ValidationException(detail="cursor is not one this API returned")
    return fields


def storable(value: str, what: str) -> str:
    """400 for text PostgreSQL cannot hold (U+0000): no sandbox or project has it, and the query
    would fail as a store error (a 503) instead of a client's mistake."""
    if "\x00" in value:
        raise ValidationException(detail=f"{what} must not contain U+0000")
    return value


def _event(row: HistoryRow) -> HistoryEvent:
    return HistoryEvent(
        event_id=row.event_id,
        type=row.type,
        source=row.source,
        occurred_at=row.occurred_at,
        received_at=row.received_at,
        data=row.data,
    )


def fleet_status(
    row: FleetRow, rule: DeadlineRule, now: datetime, book: PolicyBook = NO_POLICIES
) -> FleetSandbox:
    # The document the projector would make of this state: one owner of the idle-deadline rule.
    doc = to_doc(row, 0, now, rule, book)
    assert doc is not None  # the fleet query lists sandboxes with a status
    return fleet_sandbox(doc, row.last_activity_source)


@get(
    "/api/sandboxes/{sandbox_id:str}/history",
    security=SECURITY,
    summary="Lifecycle history of a sandbox, newest first (from PostgreSQL)",
    description=(
        "Every fact recorded for the sandbox with its source (e2b-webhook, enforcer, "
        "reconciler, ui, api) and data (a pause request carries reason, idleSince and "
        "deadline). `lastActivity` is the newest fact that moved its last activity. Pages "
        "with `cursor` = the previous page's `nextCursor`."
    ),
    raises=RAISES,
)
async def history(
    request: Request[Any, Any, State],
    sandbox_id: str,
    deps: Deps,
    limit: Annotated[int, Parameter(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> HistoryPage:
    store = deps.history
    principal = deps.gate.principal(request)
    known, project_id = await store.project_of(storable(sandbox_id, "sandboxId"))
    if not known or not principal.may_read(project_id):
        # Unknown and another project's answer alike: ids of other projects are not revealed.
        if known:
            metrics.REFUSED.labels(reason="forbidden").inc()
        raise NotFoundException(detail=f"no sandbox with id {sandbox_id}")
    before = None
    if cursor:
        at, event_id = decode_cursor(cursor, 2)
        try:
            before = (datetime.fromisoformat(at), event_id)
        except ValueError as exc:
            raise ValidationException(detail="cursor is not one this API returned") from exc
    rows = await store.page(sandbox_id, before, limit + 1)
    more, rows = len(rows) > limit, rows[:limit]
    last = await store.last_activity(sandbox_id)
    return HistoryPage(
        sandbox_id=sandbox_id,
        project_id=project_id,
        events=[_event(r) for r in rows],
        next_cursor=(
            encode_cursor(rows[-1].occurred_at.isoformat(), rows[-1].event_id) if more else None
        ),
        last_activity=_event(last) if last else None,
    )


@dataclass(frozen=True, slots=True)
class FleetQuery:
    """The fleet's filter and page, as its query parameters give them."""

    status: Status | None
    project_id: str | None
    limit: int
    cursor: str | None


def _fleet_query(
    status: Status | None = None,
    project_id: Annotated[str | None, Parameter(query="projectId")] = None,
    limit: Annotated[int, Parameter(ge=1, le=1000)] = 100,
    cursor: str | None = None,
) -> FleetQuery:
    """The fleet's query parameters, declared (and documented in OpenAPI) here, for the route."""
    return FleetQuery(status, project_id, limit, cursor)


@get(
    "/api/sandboxes",
    security=SECURITY,
    summary="The fleet (admin): sandboxes by status and project, with counts",
    description=(
        "Live sandboxes (not killed) ordered by id, filtered by `status` and `projectId`; "
        "`counts` covers the whole filter by project. Pages with `cursor`."
    ),
    raises=RAISES,
    dependencies={"fleet_query": Provide(_fleet_query, sync_to_thread=False)},
)
async def fleet(
    request: Request[Any, Any, State], deps: Deps, fleet_query: FleetQuery
) -> FleetPage:
    store = deps.history
    deps.gate.admin(request)
    status, project_id, limit = fleet_query.status, fleet_query.project_id, fleet_query.limit
    if status is Status.KILLED:
        raise ValidationException(detail="killed sandboxes are not listed")
    after = decode_cursor(fleet_query.cursor, 1)[0] if fleet_query.cursor else None
    if project_id is not None:
        storable(project_id, "projectId")
    rows = await store.fleet(status, project_id, after, limit + 1)
    more, rows = len(rows) > limit, rows[:limit]
    now = deps.clock()
    book = await deps.policies.book({r.project_id for r in rows if r.project_id is not None})
    return FleetPage(
        sandboxes=[fleet_status(r, deps.deadline_rule, now, book) for r in rows],
        counts=await store.counts(project_id),
        next_cursor=encode_cursor(rows[-1].sandbox_id) if more else None,
    )


HANDLERS = [history, fleet]
