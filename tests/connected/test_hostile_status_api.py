"""Hostile path segments, query values and cursors against status-api, with valid admin tokens
(so they reach Redis and PostgreSQL instead of stopping at the gate): only 4xx for bad input.
schemathesis (test_hostile_openapi.py) covers the documented shapes; this aims at what it
rarely writes: NUL and other odd unicode, and cursors that decode but were never handed out."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from status_api.auth import Claims, mint
from status_api.routes.operators import encode_cursor
from tests.connected.conftest import Stack
from tests.connected.helpers import live_sandbox
from tests.connected.hostile import Tally, assert_healthy

pytestmark = pytest.mark.connected

TALLY = Tally("status-api: hypothesis paths, queries, cursors")
FUZZ = settings(
    max_examples=600, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
odd_text = st.one_of(
    st.text(max_size=30),
    st.lists(
        st.sampled_from(["\x00", "\u202e", "\ufeff", "..", "/", "%", "\\", "é"]), max_size=6
    ).map("".join),
)
times = st.datetimes(
    min_value=datetime(1, 1, 2),
    max_value=datetime(9999, 12, 30),
    timezones=st.sampled_from(
        [None, UTC, timezone(timedelta(hours=14)), timezone(timedelta(hours=-14))]
    ),
).map(lambda d: d.isoformat())


@pytest.fixture(scope="module")
async def target(stack: Stack) -> str:
    """A sandbox with a history, so cursors on its history reach PostgreSQL."""
    return (await live_sandbox(stack, "cursor"))[1]


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10.0) as c:
        yield c


def admin(stack: Stack) -> dict[str, str]:
    token = mint(
        stack.jwt_secret,
        Claims(
            projects=[],
            admin=True,
            ttl_seconds=60,
            now=int(time.time()),
            subject=uuid.uuid4().hex,  # its own rate-limit bucket
        ),
    )
    return {"Authorization": f"Bearer {token}"}


def get(http: httpx.Client, stack: Stack, kind: str, path: str, **params: str) -> int:
    r = http.get(f"{stack.status_api.url}{path}", params=params, headers=admin(stack))
    TALLY.note(kind, r.status_code, f"{path} {params}")
    return r.status_code


@FUZZ
@given(
    segment=odd_text,
    route=st.sampled_from(
        [
            "/api/sandboxes/{}",
            "/api/sandboxes/{}/history",
            "/api/projects/{}/sandbox",
            "/api/sandboxes/{}/pause",
        ]
    ),
)
def test_odd_path_segments_are_4xx(
    http: httpx.Client, stack: Stack, segment: str, route: str
) -> None:
    if not segment.strip("/") or segment in (".", ".."):
        return  # the server decodes %2F: these name another route (the fleet), not an id
    path = route.format(quote(segment, safe=""))
    if route.endswith("/pause"):
        r = http.post(f"{stack.status_api.url}{path}", headers=admin(stack))
        TALLY.note(f"POST {route}", r.status_code, path)
        assert r.status_code in (202, 400, 404), r.text
    else:
        # 200: the hostile webhooks of this session did create sandboxes with such ids
        assert get(http, stack, f"GET {route}", path) in (200, 400, 404)


@FUZZ
@given(
    project=odd_text,
    status=st.sampled_from(["RUNNING", "PAUSED", "KILLED", "running", "", "\x00"]),
    limit=st.sampled_from(["1", "0", "-1", "1001", "1e3", "9" * 30, ""]),
)
def test_odd_fleet_filters_are_4xx_or_answered(
    http: httpx.Client, stack: Stack, project: str, status: str, limit: str
) -> None:
    assert get(
        http,
        stack,
        "GET /api/sandboxes?filters",
        "/api/sandboxes",
        projectId=project,
        status=status,
        limit=limit,
    ) in (200, 400)


@FUZZ
@given(
    parts=st.one_of(
        st.tuples(times, odd_text),  # the shape history hands out: (occurred_at, event_id)
        st.lists(odd_text, max_size=3),
    ),
    raw=st.one_of(st.none(), odd_text),
    route=st.sampled_from(["/api/sandboxes/{}/history", "/api/sandboxes"]),
)
def test_cursors_never_handed_out_are_4xx_or_answered(
    http: httpx.Client,
    stack: Stack,
    target: str,
    parts: tuple[str, ...] | list[str],
    raw: str | None,
    route: str,
) -> None:
    cursor = raw if raw is not None else encode_cursor(*parts)
    status = get(http, stack, f"GET {route}?cursor", route.format(target), cursor=cursor)
    assert status in (200, 400)


async def test_the_counts_and_the_services_afterwards(
    client: httpx.AsyncClient, stack: Stack
) -> None:
    TALLY.write()
    assert TALLY.total >= 1500, TALLY.total
    await assert_healthy(client, stack)
