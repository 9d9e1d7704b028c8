"""A status read's answer, the same whichever path serves it (the Litestar route or the fast
lane): 200 with the status JSON, or 304 when the client's ETag is current."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import msgspec

from sandbox_common.readmodel import StatusDoc
from status_api import http_cache, metrics
from status_api.views import WarnWindows, imminent, sandbox_status

_encoder = msgspec.json.Encoder()
_OUTCOMES = {
    (route, outcome): metrics.READS.labels(route=route, outcome=outcome)
    for route in ("project", "sandbox")
    for outcome in ("ok", "not_modified")
}


@dataclass(frozen=True, slots=True)
class Answer:
    status_code: int  # 200 or 304
    etag: str
    cache_control: str
    body: bytes  # empty for 304


def render(
    doc: StatusDoc, if_none_match: str | None, now: datetime, windows: WarnWindows, route: str
) -> Answer:
    flags = imminent(doc, now, windows)
    tag = http_cache.etag(doc.sandbox_id, doc.revision, flags.pause, flags.lifetime_end)
    cache_control = http_cache.cache_control(doc.status)
    if http_cache.matches(if_none_match, tag):
        _OUTCOMES[route, "not_modified"].inc()
        return Answer(304, tag, cache_control, b"")
    _OUTCOMES[route, "ok"].inc()
    return Answer(200, tag, cache_control, _encoder.encode(sandbox_status(doc, now, windows)))
