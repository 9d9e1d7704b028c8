"""`sandboxctl webhooks ...` and `demo-fleet`, and the E2B client under them, against the E2B
simulator's app in-process (httpx ASGITransport: no server, no broker)."""

from __future__ import annotations

import json
import socket
import warnings
from typing import Any

import httpx
import pytest

from e2b_sim.app import build_app
from e2b_sim.faults import Faults
from e2b_sim.settings import SimSettings
from e2b_sim.sim import Sim
from e2b_sim.store import ListQuery
from sandbox_common import e2b
from sandbox_common.e2b_api.client import E2BApi, E2BApiError
from sandbox_common.e2b_api.listing import ListedSandbox
from sandboxctl import cli

KEY = "unit-sim-key"
SECRET = "whsec-unit-do-not-print-0123456789abcdef"
ROTATED = "whsec-rotated-0123456789abcdef-0123456789"
HOOK = "http://127.0.0.1:18080/api/webhooks/e2b"


@pytest.fixture
def sim(monkeypatch: pytest.MonkeyPatch) -> Sim:
    monkeypatch.setenv("E2B_API_URL", "http://e2b.test")
    monkeypatch.setenv("E2B_API_KEY", KEY)
    monkeypatch.setenv("E2B_WEBHOOK_SECRET", SECRET)
    return Sim(SimSettings(api_key=KEY), Faults())


def in_process(sim: Sim) -> httpx.ASGITransport:
    with warnings.catch_warnings():  # the simulator's Litestar annotations: not our concern here
        warnings.simplefilter("ignore", DeprecationWarning)
        app: Any = build_app(sim)  # Any: Litestar's precise ASGI types vs httpx's loose ones
    return httpx.ASGITransport(app=app)


def run(sim: Sim, capsys: pytest.CaptureFixture[str], *argv: str, code: int = 0) -> tuple[str, str]:
    transport = in_process(sim)
    if code:
        with pytest.raises(SystemExit) as exit_info:
            cli.main(list(argv), e2b_transport=transport)
        assert exit_info.value.code == code
    else:
        cli.main(list(argv), e2b_transport=transport)
    out, err = capsys.readouterr()
    assert SECRET not in out + err  # the webhook secret is never printed
    return out, err


def test_register_creates_one_registration_with_the_five_types_and_the_secret(
    sim: Sim, capsys: pytest.CaptureFixture[str]
) -> None:
    out, _ = run(sim, capsys, "webhooks", "register", "--url", HOOK)
    assert out.startswith("registered ")
    (reg,) = sim.registrations.all()
    assert reg.url == HOOK
    assert sorted(reg.events) == sorted(e2b.SUBSCRIBED_TYPES)
    assert reg.secret == SECRET
    assert reg.enabled


def test_register_is_idempotent_and_patches_changed_events(
    sim: Sim, capsys: pytest.CaptureFixture[str]
) -> None:
    run(sim, capsys, "webhooks", "register", "--url", HOOK, "--events", "created", "paused")
    (first,) = sim.registrations.all()
    assert first.events == ["sandbox.lifecycle.created", "sandbox.lifecycle.paused"]

    out, _ = run(sim, capsys, "webhooks", "register", "--url", HOOK)
    assert out.startswith("updated (events) ")
    (reg,) = sim.registrations.all()
    assert reg.id == first.id
    assert sorted(reg.events) == sorted(e2b.SUBSCRIBED_TYPES)

    out, _ = run(sim, capsys, "webhooks", "register", "--url", HOOK)
    assert out.startswith("already registered ")
    assert [r.id for r in sim.registrations.all()] == [first.id]


def test_rotate_secret_updates_an_existing_registration(
    sim: Sim, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run(sim, capsys, "webhooks", "register", "--url", HOOK)
    monkeypatch.setenv("E2B_WEBHOOK_SECRET", ROTATED)
    out, _ = run(sim, capsys, "webhooks", "register", "--url", HOOK, "--rotate-secret")
    assert out.startswith("updated (secret) ")
    assert ROTATED not in out
    (reg,) = sim.registrations.all()
    assert reg.secret == ROTATED


def test_list_prints_a_table_and_json_lines(sim: Sim, capsys: pytest.CaptureFixture[str]) -> None:
    run(sim, capsys, "webhooks", "register", "--url", HOOK, "--name", "mine")
    table, _ = run(sim, capsys, "webhooks", "list")
    header, row = table.splitlines()
    assert header.split() == ["ID", "NAME", "URL", "ENABLED", "EVENTS"]
    assert HOOK in row
    assert "mine" in row
    assert "created,paused,resumed,killed,updated" in row

    lines, _ = run(sim, capsys, "webhooks", "list", "--json")
    (item,) = [json.loads(line) for line in lines.splitlines()]
    assert set(item) == {"id", "name", "url", "enabled", "events"}
    assert item["url"] == HOOK
    assert item["enabled"] is True


def test_delete_by_id_and_by_url(sim: Sim, capsys: pytest.CaptureFixture[str]) -> None:
    run(sim, capsys, "webhooks", "register", "--url", HOOK)
    run(sim, capsys, "webhooks", "register", "--url", HOOK + "?other=1")
    by_url = next(r.id for r in sim.registrations.all() if r.url == HOOK)
    out, _ = run(sim, capsys, "webhooks", "delete", "--url", HOOK)
    assert out.strip() == f"deleted {by_url}"
    (left,) = sim.registrations.all()
    out, _ = run(sim, capsys, "webhooks", "delete", left.id)
    assert out.strip() == f"deleted {left.id}"
    assert sim.registrations.all() == []

    _, err = run(sim, capsys, "webhooks", "delete", "no-such-id", code=1)
    assert err.startswith("sandboxctl webhooks delete: E2B answered 404")
    _, err = run(sim, capsys, "webhooks", "delete", "--url", HOOK, code=1)
    assert "no webhook registered" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["webhooks", "delete"], "give a webhook ID or --url URL"),
        (["webhooks", "delete", "x", "--url", HOOK], "give a webhook ID or --url URL"),
    ],
)
def test_delete_needs_exactly_one_selector(
    sim: Sim, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    _, err = run(sim, capsys, *argv, code=1)
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_argument_errors_exit_2(sim: Sim, capsys: pytest.CaptureFixture[str]) -> None:
    run(sim, capsys, "webhooks", code=2)  # no action
    run(sim, capsys, "webhooks", "register", code=2)  # --url is required


def test_wrong_api_key_is_one_line_401(
    sim: Sim, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("E2B_API_KEY", "wrong")
    _, err = run(sim, capsys, "webhooks", "register", "--url", HOOK, code=1)
    assert err.count("\n") == 1
    assert "E2B answered 401" in err
    assert "E2B_API_KEY" in err
    assert sim.registrations.all() == []


def test_missing_settings_are_named(
    sim: Sim, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("E2B_API_KEY")
    _, err = run(sim, capsys, "webhooks", "list", code=1)
    assert "E2B_API_KEY" in err
    monkeypatch.setenv("E2B_API_KEY", KEY)
    monkeypatch.delenv("E2B_WEBHOOK_SECRET")
    _, err = run(sim, capsys, "webhooks", "register", "--url", HOOK, code=1)
    assert "E2B_WEBHOOK_SECRET" in err


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port  # nothing listens once the socket is closed


def test_connection_refused_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("E2B_API_URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("E2B_API_KEY", KEY)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["webhooks", "list", "--timeout", "2"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "connection refused" in err
    assert "E2B_API_URL" in err


def test_demo_fleet_creates_once_then_reuses(sim: Sim, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = run(sim, capsys, "demo-fleet", "--count", "3", "--sandbox-timeout", "240")
    assert out.count("created") == 3
    sandboxes = {
        sb.metadata["projectId"]: sb
        for sb in sim.store.page(ListQuery(states=frozenset({"running"})), 100, None)[0]
    }
    assert set(sandboxes) == {"demo-1", "demo-2", "demo-3"}
    assert all(not sb.auto_pause for sb in sandboxes.values())
    assert all((sb.end_at - sb.started_at).total_seconds() == 240 for sb in sandboxes.values())

    out, _ = run(sim, capsys, "demo-fleet", "--count", "3", "--auto-pause")
    assert "created" not in out
    assert out.count("exists") == 3
    assert len(sim.store.page(ListQuery(), 100, None)[0]) == 3


async def test_client_lists_sandboxes_across_pages_with_a_metadata_filter(sim: Sim) -> None:
    transport = in_process(sim)
    async with E2BApi("http://e2b.test", KEY, transport=transport) as api:
        for i in range(150):
            await api.create_sandbox(
                template_id="base", timeout_seconds=60, metadata={"projectId": f"p{i % 2}"}
            )
        everything = await api.list_sandboxes()
        evens = await api.list_sandboxes(metadata={"projectId": "p0"})
        none: list[ListedSandbox] = await api.list_sandboxes(metadata={"projectId": "nope"})
    assert len(everything) == 150
    assert len({sb.sandbox_id for sb in everything}) == 150
    assert len(evens) == 75
    assert {sb.metadata["projectId"] for sb in evens} == {"p0"}
    assert none == []


async def test_client_errors_carry_e2b_message(sim: Sim) -> None:
    transport = in_process(sim)
    async with E2BApi("http://e2b.test", KEY, transport=transport) as api:
        with pytest.raises(E2BApiError, match="E2B answered 400 to POST /events/webhooks"):
            await api.create_webhook(
                name="x", url="http://example.com/hook", events=["x"], signature_secret=SECRET
            )
        with pytest.raises(E2BApiError, match="404 to PATCH"):
            await api.update_webhook("missing", {"enabled": False})
