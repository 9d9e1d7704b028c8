"""The savings ledger (issue 18, item 3): `GET /api/projects/{projectId}/savings` (admin or the
project's token) and `GET /api/savings` (admin, the whole fleet), over `from`/`to` (ISO 8601
with an offset; by default the last 7 days, at most 31), from PostgreSQL's history."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar import Request, get
from litestar.datastructures import State
from litestar.exceptions import ServiceUnavailableException, ValidationException
from litestar.params import Parameter

from status_api.deps import Deps
from status_api.routes.operators import storable
from status_api.routes.sandboxes import RAISES, SECURITY
from status_api.savings import PeriodError, SavingsLedger, SavingsReport

_DESCRIPTION = (
    "What the sandboxes ran and stayed paused, their pauses and regrets (a pause the user undid "
    "within `regretWindowSeconds`), how long wakes waited for E2B's resume, and what they cost "
    "(E2B's own `execution_time` and sizes at `priceVcpuSecond`/`priceGibSecond`), beside the "
    "seed's 2-minute cron pausing after 3 minutes (`seed`) and no enforcement "
    "(`noEnforcement`) on the same activity: `runningSecondsAvoided` and `costAvoided` are the "
    "savings (negative: that baseline would have run less). `from`/`to`: ISO 8601 with an "
    "offset; default the last 7 days; at most 31 days."
)
From = Annotated[datetime | None, Parameter(query="from")]
To = Annotated[datetime | None, Parameter(query="to")]


def _ledger(deps: Deps) -> SavingsLedger:
    if deps.savings is None:
        raise ServiceUnavailableException(detail="the savings ledger is not set up")
    return deps.savings


async def _report(
    ledger: SavingsLedger, project_id: str | None, since: datetime | None, until: datetime | None
) -> SavingsReport:
    try:
        return await ledger.report(project_id, since, until)
    except PeriodError as exc:
        raise ValidationException(detail=str(exc)) from exc


@get(
    "/api/projects/{project_id:str}/savings",
    security=SECURITY,
    summary="A project's savings ledger over a period (admin or the project)",
    description=_DESCRIPTION,
    raises=[*RAISES, ValidationException],
)
async def project_savings(
    request: Request[Any, Any, State],
    project_id: str,
    deps: Deps,
    since: From = None,
    until: To = None,
) -> SavingsReport:
    deps.gate.for_project(request, project_id)
    return await _report(_ledger(deps), storable(project_id, "projectId"), since, until)


@get(
    "/api/savings",
    security=SECURITY,
    summary="The fleet's savings ledger over a period (admin)",
    description=_DESCRIPTION + " The fleet's reads every fact of the period: seconds, not ms.",
    raises=[*RAISES, ValidationException],
)
async def fleet_savings(
    request: Request[Any, Any, State], deps: Deps, since: From = None, until: To = None
) -> SavingsReport:
    deps.gate.admin(request)
    return await _report(_ledger(deps), None, since, until)


HANDLERS = [project_savings, fleet_savings]
