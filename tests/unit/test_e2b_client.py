"""The E2B client over a fake HTTP transport (with the actuator's reading of its answers), and
the token bucket with a fake clock."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import httpx
import pytest

from enforcer.actuator.e2b import E2BSandboxControl
from enforcer.domain.outcomes import PauseOutcome
from sandbox_common.e2b_api.client import CallLimits, E2BApi, retry_after
from sandbox_common.e2b_api.pacing import TokenBucket

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def client(handler: httpx.MockTransport) -> E2BApi:
    return E2BApi("http://e2b.test/", "key-1", CallLimits(timeout_seconds=1.0), transport=handler)


@pytest.mark.parametrize(
    ("status", "body", "outcome"),
    [
        (204, None, PauseOutcome.PAUSED),
        (409, {"code": 409, "message": "Sandbox s is already paused"}, PauseOutcome.ALREADY_PAUSED),
        (
            409,
            {"code": 409, "message": "Sandbox cannot be paused while in 'killing' state"},
            PauseOutcome.TRANSITIONAL,
        ),
        (404, {"code": 404, "message": "not found"}, PauseOutcome.GONE),
        (429, {"code": 429, "message": "slow down"}, PauseOutcome.RETRYABLE),
        (502, None, PauseOutcome.RETRYABLE),
    ],
)
async def test_pause_sends_the_key_and_maps_the_answer(
    status: int, body: dict[str, object] | None, outcome: PauseOutcome
) -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(status, json=body) if body else httpx.Response(status)

    e2b = client(httpx.MockTransport(answer))
    try:
        result = await E2BSandboxControl(e2b).pause("sbx/1")
    finally:
        await e2b.aclose()
    assert (result.outcome, result.status) == (outcome, status)
    (request,) = seen
    assert request.method == "POST"
    assert request.url.raw_path == b"/sandboxes/sbx%2F1/pause"
    assert request.headers["X-API-Key"] == "key-1"


async def test_timeouts_and_connection_errors_are_retryable_without_a_status() -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    e2b = client(httpx.MockTransport(fail))
    try:
        result = await E2BSandboxControl(e2b).pause("sbx-1")
    finally:
        await e2b.aclose()
    assert (result.outcome, result.status) == (PauseOutcome.RETRYABLE, None)
    assert "timeout" in result.reason


async def test_token_bucket_allows_a_burst_then_paces_at_the_rate() -> None:
    now = [0.0]
    waited: list[float] = []

    async def sleep(seconds: float) -> None:
        waited.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(10.0, 3, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        await bucket.acquire()
    assert waited == pytest.approx([0.1, 0.1])
    assert now[0] == pytest.approx(0.2)  # 5 calls: 3 at once, then one per 100 ms


async def test_concurrency_is_capped() -> None:
    in_flight, peak = 0, 0

    async def answer(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return httpx.Response(204)

    e2b = E2BApi(
        "http://e2b.test",
        "k",
        CallLimits(max_concurrency=3, rate_per_second=1000.0, burst=1000),
        transport=httpx.MockTransport(answer),
    )
    try:
        await asyncio.gather(*(e2b.pause(f"s{i}") for i in range(12)))
    finally:
        await e2b.aclose()
    assert peak == 3


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("7", 7.0),
        (" 0 ", 0.0),
        ("Wed, 02 Dec 2026 12:00:30 GMT", 30.0),  # an HTTP-date: until then
        ("Wed, 02 Dec 2026 11:59:00 GMT", 0.0),  # already past
        ("86400", 120.0),  # bounded: a proxy's nonsense must not stall every replica for a day
        ("soon", None),
        ("-3", None),
        (None, None),
    ],
)
def test_retry_after_reads_seconds_or_a_date(header: str | None, seconds: float | None) -> None:
    assert retry_after(header, NOW) == seconds


class RecordingPace:
    def __init__(self) -> None:
        self.acquired = 0
        self.deferred: list[float] = []

    async def acquire(self) -> None:
        self.acquired += 1

    async def defer(self, seconds: float) -> None:
        self.deferred.append(seconds)


async def test_a_429_defers_the_whole_pace_and_carries_retry_after_to_the_caller() -> None:
    answers = iter(
        [
            httpx.Response(
                429, json={"code": 429, "message": "slow"}, headers={"Retry-After": "4"}
            ),
            httpx.Response(429, json={"code": 429, "message": "slow"}),
            httpx.Response(204),
        ]
    )
    pace = RecordingPace()
    e2b = E2BApi(
        "http://e2b.test",
        "k",
        CallLimits(pace=pace),
        transport=httpx.MockTransport(lambda request: next(answers)),
    )
    try:
        first = await E2BSandboxControl(e2b).pause("s1")
        second = await E2BSandboxControl(e2b).pause("s1")
        third = await E2BSandboxControl(e2b).pause("s1")
    finally:
        await e2b.aclose()
    assert (first.outcome, first.retry_after) == (PauseOutcome.RETRYABLE, 4.0)
    assert (second.outcome, second.retry_after) == (PauseOutcome.RETRYABLE, None)
    assert third.outcome is PauseOutcome.PAUSED
    # Every caller sharing the pace holds back: as asked, or a second when E2B did not say.
    assert pace.deferred == [4.0, 1.0]
    assert pace.acquired == 3


async def test_a_deferred_bucket_lets_nothing_through_until_then_and_then_paces() -> None:
    now = [0.0]
    waited: list[float] = []

    async def sleep(seconds: float) -> None:
        waited.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(10.0, 5, clock=lambda: now[0], sleep=sleep)
    await bucket.defer(3.0)
    await bucket.acquire()
    await bucket.acquire()
    assert now[0] == pytest.approx(3.1)  # not before 3 s, then at the rate (no burst)


async def test_create_v2_sends_e2b_lifecycle_fields() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(201, json={"sandboxID": "isb1", "templateID": "base"})

    e2b = client(httpx.MockTransport(answer))
    try:
        sandbox_id = await e2b.create_sandbox_v2(
            template_id="base",
            timeout_seconds=60,
            metadata={"projectId": "p1"},
            on_timeout="pause",
            auto_resume=True,
        )
        await e2b.create_sandbox_v2(template_id="base", timeout_seconds=60, metadata={})
    finally:
        await e2b.aclose()
    assert sandbox_id == "isb1"
    first, second = seen
    assert (first.method, first.url.path) == ("POST", "/v2/sandboxes")
    assert json.loads(first.content) == {
        "templateID": "base",
        "timeout": 60,
        "metadata": {"projectId": "p1"},
        "autoPause": True,
        "autoResume": {"enabled": True},
    }
    assert json.loads(second.content)["autoPause"] is False
    assert "autoResume" not in json.loads(second.content)  # E2B's default stands


async def test_a_metadata_filter_survives_e2bs_reading_of_it_whatever_its_characters() -> None:
    # E2B unescapes the `metadata` query value once more than HTTP does, then each key and
    # value again (its SDK's paginator quotes them before urlencoding): `a&b=c` must not split.
    from urllib.parse import parse_qs, urlsplit

    from e2b_sim.api_sandboxes import _metadata_filter

    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[])

    wanted = {"projectId": "a&b=c d/é", "team": "x%y"}
    e2b = client(httpx.MockTransport(answer))
    try:
        await e2b.list_sandboxes(metadata=wanted)
    finally:
        await e2b.aclose()
    (request,) = seen
    (raw,) = parse_qs(urlsplit(str(request.url)).query)["metadata"]
    assert _metadata_filter(raw) == wanted
