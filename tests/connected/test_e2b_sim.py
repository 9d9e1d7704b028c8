"""The E2B simulator as a real HTTP server (subprocess), checked against reference/e2b.md.

Needs no Kafka: webhooks go to a small receiver in this process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import msgspec
import pytest

from sandbox_common import e2b
from tests.connected.e2b_sim_process import Receiver, SimProcess

pytestmark = pytest.mark.connected

KEY = "test-sim-key"
SECRET = "whsec-sim-test"


@pytest.fixture(scope="module")
def sim() -> Iterator[SimProcess]:
    process = SimProcess(
        {
            "E2B_SIM_API_KEY": KEY,
            "E2B_SIM_TICK_SECONDS": "0.05",
            "E2B_SIM_WEBHOOK_RETRY_DELAY_SECONDS": "0.2",
            "E2B_SIM_WEBHOOK_TIMEOUT_SECONDS": "2",
            "E2B_SIM_SEED": "7",
        }
    ).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
async def receiver() -> AsyncIterator[Receiver]:
    server = await Receiver().start()
    yield server
    await server.stop()


@pytest.fixture
async def api(sim: SimProcess, receiver: Receiver) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim.url, headers={"X-API-Key": KEY}) as client:
        assert (await client.post("/_sim/reset")).status_code == 200
        receiver.clear()
        yield client


async def eventually(check: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def create(api: httpx.AsyncClient, **body: Any) -> str:
    r = await api.post("/sandboxes", json={"templateID": "base", "timeout": 300, **body})
    assert r.status_code == 201, r.text
    sandbox_id: str = r.json()["sandboxID"]
    return sandbox_id


async def register(api: httpx.AsyncClient, receiver: Receiver, **extra: Any) -> dict[str, Any]:
    body = {
        "name": "ingest",
        "url": receiver.url,
        "events": list(e2b.SUBSCRIBED_TYPES),
        "signatureSecret": SECRET,
        "enabled": True,
        **extra,
    }
    r = await api.post("/events/webhooks", json=body)
    assert r.status_code == 201, r.text
    reg: dict[str, Any] = r.json()
    return reg


async def faults(api: httpx.AsyncClient, **knobs: Any) -> None:
    assert (await api.patch("/_sim/faults", json=knobs)).status_code == 200


def bodies(receiver: Receiver) -> list[dict[str, Any]]:
    return [msgspec.json.decode(r.body) for r in receiver.received]


async def test_api_key_is_required(api: httpx.AsyncClient, sim: SimProcess) -> None:
    for headers in ({}, {"X-API-Key": "wrong"}):
        async with httpx.AsyncClient(base_url=sim.url, headers=headers) as client:
            r = await client.post("/sandboxes", json={"templateID": "base"})
            assert r.status_code == 401
            assert r.json()["code"] == 401
            assert isinstance(r.json()["message"], str)
            assert (await client.get("/v2/sandboxes")).status_code == 401
    calls = (await api.get("/_sim/calls", params={"op": "create"})).json()
    assert [c["status"] for c in calls] == [401, 401]


async def test_pause_codes_and_call_log(api: httpx.AsyncClient) -> None:
    sid = await create(api)
    assert (await api.post(f"/sandboxes/{sid}/pause")).status_code == 204
    again = await api.post(f"/sandboxes/{sid}/pause")
    assert again.status_code == 409
    assert "already paused" in again.json()["message"]
    assert (await api.get(f"/sandboxes/{sid}")).json()["state"] == "paused"
    assert (await api.post("/sandboxes/nope/pause")).status_code == 404
    calls = (await api.get("/_sim/calls", params={"sandboxId": sid, "op": "pause"})).json()
    assert [c["status"] for c in calls] == [204, 409]
    assert all(c["method"] == "POST" and c["path"].endswith("/pause") for c in calls)


async def test_transitional_pause_answers_retryable_409(api: httpx.AsyncClient) -> None:
    await faults(api, transitionMs=400)
    sid = await create(api)
    assert (await api.post(f"/sandboxes/{sid}/pause")).status_code == 204
    busy = await api.post(f"/sandboxes/{sid}/pause")
    assert busy.status_code == 409
    assert busy.json()["message"] == "Sandbox cannot be paused while in 'pausing' state"
    assert (await api.get(f"/sandboxes/{sid}")).json()["state"] == "paused"  # pausing reads so
    await asyncio.sleep(0.5)
    assert "already paused" in (await api.post(f"/sandboxes/{sid}/pause")).json()["message"]


async def test_connect_resume_and_kill_codes(api: httpx.AsyncClient) -> None:
    sid = await create(api)
    assert (await api.post(f"/sandboxes/{sid}/connect", json={"timeout": 60})).status_code == 200
    assert (await api.post(f"/sandboxes/{sid}/connect")).status_code == 400  # timeout required
    assert (await api.post(f"/sandboxes/{sid}/resume")).status_code == 409  # already running
    await api.post(f"/sandboxes/{sid}/pause")
    resumed = await api.post(f"/sandboxes/{sid}/connect", json={"timeout": 60})
    assert resumed.status_code == 201
    assert resumed.json()["sandboxID"] == sid
    await api.post(f"/sandboxes/{sid}/pause")
    assert (await api.post(f"/sandboxes/{sid}/resume", json={"timeout": 60})).status_code == 201
    assert (await api.post("/sandboxes/nope/connect", json={"timeout": 5})).status_code == 404
    await faults(api, transitionMs=2000)
    assert (await api.delete(f"/sandboxes/{sid}")).status_code == 204
    being_killed = await api.post(f"/sandboxes/{sid}/connect", json={"timeout": 5})
    assert being_killed.status_code == 409
    await faults(api, transitionMs=0)
    other = await create(api)
    assert (await api.delete(f"/sandboxes/{other}")).status_code == 204
    assert (await api.delete(f"/sandboxes/{other}")).status_code == 404
    assert (await api.get(f"/sandboxes/{other}")).status_code == 404


async def test_set_timeout_and_refresh(api: httpx.AsyncClient) -> None:
    sid = await create(api, timeout=300)
    before = datetime.now(UTC)
    assert (await api.post(f"/sandboxes/{sid}/timeout", json={"timeout": 30})).status_code == 204
    end = datetime.fromisoformat((await api.get(f"/sandboxes/{sid}")).json()["endAt"])
    assert before + timedelta(seconds=29) < end < before + timedelta(seconds=32)  # shortened
    assert (await api.post(f"/sandboxes/{sid}/refreshes", json={"duration": 5})).status_code == 204
    same = datetime.fromisoformat((await api.get(f"/sandboxes/{sid}")).json()["endAt"])
    assert same == end  # a refresh never shortens
    await api.post(f"/sandboxes/{sid}/refreshes", json={"duration": 600})
    longer = datetime.fromisoformat((await api.get(f"/sandboxes/{sid}")).json()["endAt"])
    assert longer > end + timedelta(seconds=500)
    await api.post(f"/sandboxes/{sid}/pause")
    assert (await api.post(f"/sandboxes/{sid}/timeout", json={"timeout": 30})).status_code == 409


async def test_timeout_runs_out_kill_or_auto_pause(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    await register(api, receiver)
    killed = await create(api, timeout=1, metadata={"projectId": "p-kill"})
    paused = await create(api, timeout=1, lifecycle={"onTimeout": "pause"})
    legacy = await create(api, timeout=1, autoPause=True)
    await asyncio.sleep(1.3)
    assert (await api.get(f"/sandboxes/{killed}")).status_code == 404
    assert (await api.get(f"/sandboxes/{paused}")).json()["state"] == "paused"
    assert (await api.get(f"/sandboxes/{legacy}")).json()["state"] == "paused"

    def kill_event() -> list[dict[str, Any]]:
        return [b for b in bodies(receiver) if b["type"] == e2b.LifecycleType.KILLED]

    await eventually(lambda: bool(kill_event()))
    data = kill_event()[0]["event_data"]
    assert data["kill_reason"] == "timeout"
    assert data["sandbox_metadata"] == {"projectId": "p-kill"}
    assert set(data["execution"]) == {"started_at", "vcpu_count", "memory_mb", "execution_time"}


async def test_list_filters_and_paging(api: httpx.AsyncClient) -> None:
    ids = {await create(api, metadata={"group": "g1"}) for _ in range(5)}
    await create(api, metadata={"group": "other"})
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 2, "metadata": "group=g1"}
    while True:
        r = await api.get("/v2/sandboxes", params=params)
        assert r.status_code == 200
        page = r.json()
        assert len(page) <= 2
        seen += [s["sandboxID"] for s in page]
        token = r.headers.get("x-next-token")
        if token is None:
            break
        params["nextToken"] = token
    assert sorted(seen) == sorted(ids)
    one = next(iter(ids))
    await api.post(f"/sandboxes/{one}/pause")
    paused = (await api.get("/v2/sandboxes", params={"state": "paused"})).json()
    assert [s["sandboxID"] for s in paused] == [one]
    both = await api.get("/v2/sandboxes", params={"state": "running,paused", "limit": 100})
    assert len(both.json()) == 6
    for bad in (0, 101):
        assert (await api.get("/v2/sandboxes", params={"limit": bad})).status_code == 400


async def test_delivery_is_signed_v2_and_subscribed_only(
    api: httpx.AsyncClient, receiver: Receiver
) -> None:
    reg = await register(api, receiver, events=["sandbox.lifecycle.paused"])
    assert "signatureSecret" not in reg
    assert set(reg) >= {"id", "name", "url", "enabled", "events", "teamId", "createdAt"}
    sid = await create(api, metadata={"projectId": "p1"})
    await api.post(f"/sandboxes/{sid}/pause")
    await eventually(lambda: len(receiver.received) == 1)
    await asyncio.sleep(0.2)
    (got,) = receiver.received  # created was not subscribed
    assert e2b.verify_signature(SECRET, got.body, got.headers[e2b.HEADER_SIGNATURE])
    assert got.headers[e2b.HEADER_SIGNATURE_VERSION] == "v1"
    assert got.headers[e2b.HEADER_WEBHOOK_ID] == reg["id"]
    event = e2b.parse_webhook(got.body)
    assert (event.version, event.type, event.sandbox_id) == ("v2", "sandbox.lifecycle.paused", sid)
    assert event.metadata == {"projectId": "p1"}
    assert "execution" in event.data


async def test_payload_v1_on_request(api: httpx.AsyncClient, receiver: Receiver) -> None:
    await register(api, receiver, payloadVersion="v1")
    sid = await create(api)
    await eventually(lambda: len(receiver.received) == 1)
    body = bodies(receiver)[0]
    assert (body["version"], body["sandboxId"]) == ("v1", sid)
    assert "eventData" not in body  # no metadata, no event data: the key is absent


async def test_retry_after_500_keeps_body_id(api: httpx.AsyncClient, receiver: Receiver) -> None:
    receiver.script[:] = [500, 503]
    await register(api, receiver)
    await create(api)
    await eventually(lambda: len(receiver.received) == 3)
    ids = {b["id"] for b in bodies(receiver)}
    deliveries = {r.headers[e2b.HEADER_DELIVERY_ID] for r in receiver.received}
    assert len(ids) == 1
    assert len(deliveries) == 3
    gaps = [b.at - a.at for a, b in zip(receiver.received, receiver.received[1:], strict=False)]
    assert all(g >= 0.15 for g in gaps)  # the configured retry delay (0.2 s)


async def test_gives_up_after_the_retries(api: httpx.AsyncClient, receiver: Receiver) -> None:
    receiver.script[:] = [500] * 10
    await register(api, receiver)
    sid = await create(api)
    await asyncio.sleep(1.2)
    assert len(receiver.received) == 4  # the first attempt and 3 retries
    log = (await api.get("/_sim/deliveries", params={"sandboxId": sid})).json()
    assert log[-1]["outcome"] == "abandoned"


async def test_duplicates_share_the_body_id(api: httpx.AsyncClient, receiver: Receiver) -> None:
    await faults(api, duplicateProbability=1.0)
    await register(api, receiver)
    await create(api)
    await eventually(lambda: len(receiver.received) == 2)
    assert len({b["id"] for b in bodies(receiver)}) == 1
    assert len({r.headers[e2b.HEADER_DELIVERY_ID] for r in receiver.received}) == 2


async def test_dropped_webhooks_never_arrive(api: httpx.AsyncClient, receiver: Receiver) -> None:
    await faults(api, dropProbability=1.0)
    await register(api, receiver)
    sid = await create(api)
    await asyncio.sleep(0.3)
    assert receiver.received == []
    log = (await api.get("/_sim/deliveries", params={"sandboxId": sid})).json()
    assert [d["outcome"] for d in log] == ["dropped"]
    assert len((await api.get(f"/events/sandboxes/{sid}")).json()) == 1  # still in history


async def test_reorder_shuffles_a_window(api: httpx.AsyncClient, receiver: Receiver) -> None:
    await faults(api, reorderWindow=8, reorderHoldMs=2000)
    await register(api, receiver, events=["sandbox.lifecycle.created"])
    created = [await create(api) for _ in range(8)]
    await eventually(lambda: len(receiver.received) == 8)
    arrived = [b["sandbox_id"] for b in bodies(receiver)]
    assert sorted(arrived) == sorted(created)
    assert arrived != created


async def test_delivery_delay(api: httpx.AsyncClient, receiver: Receiver) -> None:
    await faults(api, deliveryDelayMs=400)
    await register(api, receiver)
    start = time.monotonic()
    await create(api)
    await eventually(lambda: len(receiver.received) == 1)
    assert receiver.received[0].at - start >= 0.38


async def test_injected_pause_faults(api: httpx.AsyncClient) -> None:
    sid = await create(api)
    await faults(api, pauseStatus=429, pauseStatusCount=2)
    codes = [(await api.post(f"/sandboxes/{sid}/pause")).status_code for _ in range(3)]
    assert codes == [429, 429, 204]
    await faults(api, pauseStatus=500, pauseStatusProbability=1.0, pauseStatusCount=0)
    assert (await api.post(f"/sandboxes/{sid}/pause")).status_code == 500
    await faults(api, pauseStatus=None, pauseLatencyMs=300)
    start = time.monotonic()
    assert (await api.post(f"/sandboxes/{sid}/pause")).status_code == 409  # already paused
    assert time.monotonic() - start >= 0.29
    calls = (await api.get("/_sim/calls", params={"sandboxId": sid, "op": "pause"})).json()
    assert [c["status"] for c in calls] == [429, 429, 204, 500, 409]


async def test_registration_api(api: httpx.AsyncClient, receiver: Receiver) -> None:
    reg = await register(api, receiver)
    url = f"/events/webhooks/{reg['id']}"
    assert [r["id"] for r in (await api.get("/events/webhooks")).json()] == [reg["id"]]
    patched = await api.patch(url, json={"enabled": False})
    assert patched.status_code == 200
    assert patched.json()["enabled"] is False
    assert "signatureSecret" not in (await api.get(url)).json()
    await create(api)
    await asyncio.sleep(0.2)
    assert receiver.received == []  # disabled
    assert (await api.delete(url)).status_code == 200
    assert (await api.get(url)).status_code == 404
    remote = {"name": "x", "url": "http://example.com/h", "events": [], "signatureSecret": "s"}
    assert (await api.post("/events/webhooks", json=remote)).status_code == 400


async def test_events_api_camel_case(api: httpx.AsyncClient) -> None:
    sid = await create(api, metadata={"projectId": "p9"})
    await api.post(f"/sandboxes/{sid}/pause")
    await create(api)
    events = (await api.get(f"/events/sandboxes/{sid}", params={"orderAsc": "true"})).json()
    assert [e["type"] for e in events] == ["sandbox.lifecycle.created", "sandbox.lifecycle.paused"]
    assert events[0]["sandboxId"] == sid
    assert events[0]["eventData"] == {"sandboxMetadata": {"projectId": "p9"}}
    assert len((await api.get("/events/sandboxes")).json()) == 3


async def test_v2_create_and_connect_bodies(api: httpx.AsyncClient) -> None:
    """What E2B's SDK 2.63 sends: POST /v2/sandboxes and POST /v2/sandboxes/{id}/connect."""
    r = await api.post("/v2/sandboxes", json={"templateID": "base", "envVars": {"A": "1"}})
    assert r.status_code == 201, r.text
    created = r.json()
    assert set(created) >= {"sandboxID", "templateID", "clientID", "envdVersion"}
    sid = created["sandboxID"]
    detail = (await api.get(f"/sandboxes/{sid}")).json()
    span = datetime.fromisoformat(detail["endAt"]) - datetime.fromisoformat(detail["startedAt"])
    assert span == timedelta(seconds=300)  # the v2 default
    assert detail["lifecycle"] == {"onTimeout": "kill", "autoResume": False}
    for bad in ({"templateID": "base", "timeout": 0}, {"timeout": 60}):
        assert (await api.post("/v2/sandboxes", json=bad)).status_code == 400
    too_long = await api.post("/v2/sandboxes", json={"templateID": "base", "timeout": 86_401})
    assert too_long.json() == {"code": 400, "message": "Timeout cannot be greater than 24 hours"}

    assert (await api.post(f"/v2/sandboxes/{sid}/connect")).status_code == 200  # no body
    assert (await api.post(f"/v2/sandboxes/{sid}/connect", json={"timeout": 0})).status_code == 400
    await api.post(f"/sandboxes/{sid}/pause")
    resumed = await api.post(f"/v2/sandboxes/{sid}/connect", json={"timeout": 60, "memory": False})
    assert resumed.status_code == 201
    assert resumed.json()["sandboxID"] == sid
    assert (await api.post("/v2/sandboxes/nope/connect", json={})).status_code == 404
    calls = (await api.get("/_sim/calls", params={"sandboxId": sid, "op": "connect"})).json()
    assert [c["status"] for c in calls] == [200, 400, 201]

    lifecycle = {"templateID": "base", "autoPause": True, "autoResume": {"enabled": True}}
    for route in ("/v2/sandboxes", "/sandboxes"):
        made = (await api.post(route, json=lifecycle)).json()["sandboxID"]
        shown = (await api.get(f"/sandboxes/{made}")).json()["lifecycle"]
        assert shown == {"onTimeout": "pause", "autoResume": True}


async def test_timeout_is_capped_at_the_maximum_instance_length(api: httpx.AsyncClient) -> None:
    sid = await create(api, timeout=60)
    r = await api.post(f"/sandboxes/{sid}/timeout", json={"timeout": 200_000})
    assert r.status_code == 204
    detail = (await api.get(f"/sandboxes/{sid}")).json()
    start, end = (datetime.fromisoformat(detail[k]) for k in ("startedAt", "endAt"))
    assert end == start + timedelta(hours=24)


async def test_list_reads_metadata_as_e2b_does_and_orders(api: httpx.AsyncClient) -> None:
    first = await create(api, metadata={"a b": "c&d=e", "t": "x"})
    second = await create(api, metadata={"t": "x"}, templateID="py")
    # E2B's SDKs escape each key and value, then encode the whole query.
    r = await api.get("/v2/sandboxes", params={"metadata": "a%2520b=c%2526d%253De"})
    assert [s["sandboxID"] for s in r.json()] == [first]
    assert "lifecycle" not in r.json()[0]
    ordered = await api.get("/v2/sandboxes", params={"metadata": "t=x", "order": "asc"})
    assert [s["sandboxID"] for s in ordered.json()] == [first, second]
    py = await api.get("/v2/sandboxes", params={"template": "py"})
    assert [s["sandboxID"] for s in py.json()] == [second]
    started = (await api.get(f"/sandboxes/{second}")).json()["startedAt"]
    after = await api.get("/v2/sandboxes", params={"startedAfter": started})
    assert [s["sandboxID"] for s in after.json()] == [second]
    for bad in ({"metadata": "novalue"}, {"order": "up"}, {"startedAfter": "yesterday"}):
        assert (await api.get("/v2/sandboxes", params=bad)).status_code == 400


async def test_traffic_endpoint(api: httpx.AsyncClient, receiver: Receiver) -> None:
    await register(api, receiver, events=["sandbox.lifecycle.resumed"])
    sid = await create(api, autoPause=True, autoResume={"enabled": True})
    assert (await api.post(f"/_sim/sandboxes/{sid}/traffic")).status_code == 200  # running
    await api.post(f"/sandboxes/{sid}/pause")
    woken = await api.post(f"/_sim/sandboxes/{sid}/traffic")
    assert woken.status_code == 201
    assert woken.json()["state"] == "running"
    await eventually(lambda: len(receiver.received) == 1)
    assert bodies(receiver)[0]["sandbox_id"] == sid
    plain = await create(api)
    await api.post(f"/sandboxes/{plain}/pause")
    assert (await api.post(f"/_sim/sandboxes/{plain}/traffic")).status_code == 409
    assert (await api.get(f"/sandboxes/{plain}")).json()["state"] == "paused"
    assert (await api.post("/_sim/sandboxes/nope/traffic")).status_code == 404
    assert (await api.get("/_sim/calls", params={"sandboxId": sid, "op": "traffic"})).json() == []
