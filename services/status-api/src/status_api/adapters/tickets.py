"""Stream tickets: a browser's EventSource cannot send a header, and a token in the URL ends up
in proxy logs; a ticket there is worth nothing once used or a minute old."""

from __future__ import annotations

import msgspec

from sandbox_common.readmodel.tickets import SingleUseTickets
from status_api.access import StreamPass

# Long enough for a page to open its stream, short enough that a logged URL is stale by then.
TICKET_SECONDS = 60

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(StreamPass)


class StreamTickets:
    def __init__(self, tickets: SingleUseTickets) -> None:
        self._tickets = tickets

    async def issue(self, stream_pass: StreamPass, now: float) -> tuple[str, int]:
        """A ticket for what the pass allows, and its lifetime in seconds (never past the
        token's own expiry)."""
        ttl = max(1, min(TICKET_SECONDS, int(stream_pass.expires_at - now)))
        return await self._tickets.issue(_encoder.encode(stream_pass), ttl), ttl

    async def redeem(self, ticket: str) -> StreamPass | None:
        """Who the ticket lets in, once; None when unknown, used or expired."""
        raw = await self._tickets.redeem(ticket)
        return _decoder.decode(raw) if raw else None
