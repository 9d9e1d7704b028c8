"""Stream tickets: what a browser puts in a stream's URL instead of its token."""

from __future__ import annotations

from typing import Any

from litestar import Request, post
from litestar.datastructures import State
from litestar.exceptions import NotAuthorizedException, TooManyRequestsException
from litestar.status_codes import HTTP_201_CREATED

from status_api.adapters.tickets import TICKET_SECONDS
from status_api.deps import Deps
from status_api.routes.sandboxes import SECURITY
from status_api.views import StreamTicket


@post(
    "/api/stream-tickets",
    security=SECURITY,
    status_code=HTTP_201_CREATED,
    summary="A single-use ticket to open a stream from a browser",
    description=(
        "A browser's EventSource cannot send the Authorization header, and a token in a URL "
        "ends up in proxy logs. This ticket opens one stream the token may open "
        f"(`?ticket=`), once, within {TICKET_SECONDS} s; the stream ends when the token "
        "expires. The token must come in the Authorization header."
    ),
    raises=[NotAuthorizedException, TooManyRequestsException],
)
async def stream_ticket(request: Request[Any, Any, State], deps: Deps) -> StreamTicket:
    admitted = deps.gate.stream_pass(request, query_token=False)
    ticket, ttl = await deps.tickets.issue(admitted, deps.clock().timestamp())
    return StreamTicket(ticket=ticket, expires_in_seconds=ttl)


HANDLERS = [stream_ticket]
