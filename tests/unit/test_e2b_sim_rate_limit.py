"""The simulator's E2B rate limit: the bucket with a fake clock, its settings, and its answers
over HTTP (the app in-process, no server): 429 in E2B's shape with Retry-After, on E2B's API
only, recorded in the call log; and the Retry-After of injected 429s."""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from e2b_sim.app import build_app
from e2b_sim.faults import Faults, faults_from_env
from e2b_sim.ratelimit import RateLimit, retry_after
from e2b_sim.settings import SimSettings
from e2b_sim.sim import Sim

KEY = "unit-rate-key"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_full_bucket_lets_the_burst_through_then_refuses() -> None:
    clock = FakeClock()
    limit = RateLimit(2.0, 3, clock)
    assert [limit.take("team") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limit.take("team") == pytest.approx(0.5)  # one token back at 2 per second
    assert limit.take("team") == pytest.approx(0.5)  # a refused call spends nothing


def test_tokens_come_back_at_the_rate_up_to_the_burst() -> None:
    clock = FakeClock()
    limit = RateLimit(2.0, 3, clock)
    for _ in range(3):
        limit.take("team")
    clock.now += 0.25
    assert limit.take("team") == pytest.approx(0.25)  # half a token so far
    clock.now += 0.25
    assert limit.take("team") == 0.0
    assert limit.take("team") == pytest.approx(0.5)
    clock.now += 60  # a long pause refills no more than the burst
    assert [limit.take("team") for _ in range(4)][-1] == pytest.approx(0.5)


def test_over_time_the_rate_is_what_goes_through() -> None:
    clock = FakeClock()
    limit = RateLimit(10.0, 5, clock)
    allowed = 0
    for _ in range(1000):  # 100 calls a second for 10 s
        allowed += limit.take("team") == 0.0
        clock.now += 0.01
    assert 100 <= allowed <= 5 + 10 * 10


def test_each_team_has_its_own_bucket_and_reset_fills_them() -> None:
    limit = RateLimit(1.0, 1, FakeClock())
    assert limit.take("a") == 0.0
    assert limit.take("a") > 0
    assert limit.take("b") == 0.0
    limit.reset()
    assert limit.take("a") == 0.0


def test_rate_zero_is_no_limit() -> None:
    limit = RateLimit(0.0, 1, FakeClock())
    assert all(limit.take("team") == 0.0 for _ in range(10_000))


def test_retry_after_is_whole_seconds_rounded_up_and_at_least_one() -> None:
    assert [retry_after(w) for w in (0.001, 0.5, 1.0, 1.2, 2.999, 7.0)] == [1, 1, 1, 2, 3, 7]
    # What a client waiting that long finds: a token.
    clock = FakeClock()
    limit = RateLimit(0.4, 1, clock)
    limit.take("team")
    wait = limit.take("team")
    assert retry_after(wait) == 3  # 2.5 s until the next token
    clock.now += retry_after(wait)
    assert limit.take("team") == 0.0


def test_bad_limits_are_refused() -> None:
    for rate, burst in ((-1.0, 1), (1.0, 0)):
        with pytest.raises(ValueError, match="a rate limit needs"):
            RateLimit(rate, burst)


def test_settings_default_to_e2bs_limit_and_read_the_environment() -> None:
    default = SimSettings.from_env({})
    assert default.rate_limit_per_second * 30 == pytest.approx(20_000)
    assert default.rate_limit_burst == 20_000
    env = {"E2B_SIM_RATE_LIMIT_PER_SECOND": "0", "E2B_SIM_RATE_LIMIT_BURST": "5"}
    read = SimSettings.from_env(env)
    assert (read.rate_limit_per_second, read.rate_limit_burst) == (0.0, 5)
    for bad in ({"E2B_SIM_RATE_LIMIT_PER_SECOND": "-1"}, {"E2B_SIM_RATE_LIMIT_BURST": "0"}):
        with pytest.raises(ValueError, match="E2B_SIM_RATE_LIMIT"):
            SimSettings.from_env(bad)


def test_retry_after_fault_knob_from_the_environment() -> None:
    assert Faults().retry_after_seconds is None
    assert faults_from_env({"E2B_SIM_RETRY_AFTER_SECONDS": "3"}).retry_after_seconds == 3


# -- over HTTP --------------------------------------------------------------------------------


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> Sim:
    settings = SimSettings(api_key=KEY, rate_limit_per_second=0.5, rate_limit_burst=2)
    return Sim(settings, Faults(), ticks=clock)


def client_of(sim: Sim) -> httpx.AsyncClient:
    with warnings.catch_warnings():  # the simulator's Litestar annotations: not our concern here
        warnings.simplefilter("ignore", DeprecationWarning)
        app: Any = build_app(sim)  # Any: Litestar's precise ASGI types vs httpx's loose ones
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(
        transport=transport, base_url="http://sim.test", headers={"X-API-Key": KEY}
    )


@pytest.fixture
async def api(sim: Sim) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(sim) as client:
        yield client


async def test_over_the_limit_is_429_in_e2bs_shape_with_retry_after(
    api: httpx.AsyncClient, clock: FakeClock
) -> None:
    created = await api.post("/sandboxes", json={"templateID": "base"})
    assert created.status_code == 201
    sid = created.json()["sandboxID"]
    assert (await api.get(f"/sandboxes/{sid}")).status_code == 200
    refused = await api.post(f"/sandboxes/{sid}/pause")
    assert refused.status_code == 429
    assert refused.json() == {"code": 429, "message": "Rate limit exceeded, please try again later"}
    assert refused.headers["retry-after"] == "2"  # one token back at 0.5 per second
    # Every E2B route spends the same budget: the v2 list and the events API too.
    assert (await api.get("/v2/sandboxes")).status_code == 429
    assert (await api.get("/events/webhooks")).status_code == 429
    clock.now += 2
    assert (await api.post(f"/sandboxes/{sid}/pause")).status_code == 204
    calls = (await api.get("/_sim/calls")).json()
    assert [(c["op"], c["status"]) for c in calls] == [
        ("create", 201),
        ("get", 200),
        ("pause", 429),
        ("list", 429),
        ("events", 429),
        ("pause", 204),
    ]


async def test_the_simulators_own_routes_and_a_wrong_key_spend_nothing(
    api: httpx.AsyncClient,
) -> None:
    for _ in range(5):
        assert (await api.get("/_sim/faults")).status_code == 200
        assert (await api.get("/healthz")).status_code == 200
        wrong = await api.get("/v2/sandboxes", headers={"X-API-Key": "wrong"})
        assert wrong.status_code == 401
    assert (await api.get("/v2/sandboxes")).status_code == 200
    assert (await api.get("/v2/sandboxes")).status_code == 200
    assert (await api.get("/v2/sandboxes")).status_code == 429


async def test_reset_fills_the_bucket(api: httpx.AsyncClient) -> None:
    for _ in range(2):
        await api.get("/v2/sandboxes")
    assert (await api.get("/v2/sandboxes")).status_code == 429
    assert (await api.post("/_sim/reset")).status_code == 200
    assert (await api.get("/v2/sandboxes")).status_code == 200


async def test_injected_429s_carry_the_configured_retry_after(clock: FakeClock) -> None:
    sim = Sim(SimSettings(api_key=KEY, rate_limit_per_second=0), Faults(), ticks=clock)
    async with client_of(sim) as api:
        sid = (await api.post("/sandboxes", json={"templateID": "base"})).json()["sandboxID"]
        knobs = {"pauseStatus": 429, "pauseStatusCount": 1}
        assert (await api.patch("/_sim/faults", json=knobs)).status_code == 200
        plain = await api.post(f"/sandboxes/{sid}/pause")
        assert plain.status_code == 429
        assert "retry-after" not in plain.headers
        knobs = {"pauseStatus": 429, "pauseStatusCount": 1, "retryAfterSeconds": 3}
        assert (await api.patch("/_sim/faults", json=knobs)).status_code == 200
        told = await api.post(f"/sandboxes/{sid}/pause")
        assert (told.status_code, told.headers["retry-after"]) == (429, "3")
        assert told.json()["code"] == 429
        knobs = {"pauseStatus": 500, "pauseStatusCount": 1}
        assert (await api.patch("/_sim/faults", json=knobs)).status_code == 200
        failed = await api.post(f"/sandboxes/{sid}/pause")
        assert failed.status_code == 500
        assert "retry-after" not in failed.headers  # only a 429 carries it
        assert (await api.post(f"/sandboxes/{sid}/pause")).status_code == 204
