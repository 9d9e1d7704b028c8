"""The policy routes of status-api (issue 17) without a broker or a database: the answer's
`effective` and its sources, the fact a PUT publishes, the 422 naming the field (and nothing
published), who may read and write, the OpenAPI document; the adapter's reading of stored rows."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Collection, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from litestar.testing import TestClient

from sandbox_common.envelope import Envelope, FactType, Source
from sandbox_common.facts import policy_subject, policy_view
from sandbox_common.kafka_publisher import BrokerUnavailableError
from sandbox_common.policies import Policy, QuietHours, encode_policy
from status_api.adapters.policies import PolicyStore, StoredPolicyError
from status_api.app import create_app
from status_api.auth import Claims, mint
from status_api.bootstrap import StatusApiParts
from status_api.policies import Levels, Policies, StoredPolicy, setting_level
from status_api.settings import StatusApiSettings

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
SECRET = "policy-test-secret-" + "x" * 32
SETTING = setting_level(idle_timeout_seconds=180, warn_before_seconds=30)


def stored(project_id: str | None, policy: Policy) -> StoredPolicy:
    return StoredPolicy(project_id, policy, f"ev-{project_id}", T0, "admin-1")


@dataclass
class Reads:
    rows: dict[str | None, StoredPolicy] = field(default_factory=dict)
    asked: list[str | None] = field(default_factory=list)

    async def levels(self, project_id: str | None) -> Levels:
        self.asked.append(project_id)
        own = self.rows.get(project_id) if project_id is not None else None
        return Levels(self.rows.get(None), own)

    async def projects(self, after: str | None, limit: int) -> list[StoredPolicy]:
        found = sorted((p, r) for p, r in self.rows.items() if p is not None)
        return [r for p, r in found if after is None or p > after][:limit]

    async def of_projects(self, project_ids: Collection[str]) -> list[StoredPolicy]:
        return [r for p, r in self.rows.items() if p is None or p in project_ids]


@dataclass
class Sink:
    facts: list[Envelope] = field(default_factory=list)
    down: bool = False

    async def publish(self, envelope: Envelope) -> None:
        if self.down:
            raise BrokerUnavailableError("broker down")
        self.facts.append(envelope)


def policies(reads: Reads, sink: Sink) -> Policies:
    return Policies(reads, sink, SETTING, lambda: T0)


def sources(effective: dict[str, Any]) -> dict[str, tuple[object, str]]:
    return {
        name: (v["value"], v["source"]) if isinstance(v, dict) else (v.value, v.source.value)
        for name, v in effective.items()
    }


def test_a_policy_is_written_with_the_fields_it_sets_only() -> None:
    assert encode_policy(Policy(idle_timeout_seconds=600)) == b'{"idleTimeoutSeconds":600}'
    assert encode_policy(Policy()) == b"{}"


async def test_a_project_without_a_policy_inherits_every_field() -> None:
    answer = await policies(Reads(), Sink()).read("p1")
    assert (answer.project_id, answer.policy, answer.set_at, answer.event_id) == (
        "p1",
        Policy(),
        None,
        None,
    )
    assert sources(answer.effective) == {
        "idleTimeoutSeconds": (180, "setting"),
        "neverPause": (None, "setting"),
        "maxLifetimeSeconds": (None, "setting"),
        "quietHours": (None, "setting"),
        "deleteAfterPausedSeconds": (None, "setting"),
        "warnBeforeSeconds": (30, "setting"),
        "idle": (None, "setting"),
        "prewarm": (None, "setting"),
    }


async def test_each_value_in_force_names_its_level() -> None:
    reads = Reads(
        {
            None: stored(None, Policy(idle_timeout_seconds=300, never_pause=False)),
            "p1": stored("p1", Policy(idle_timeout_seconds=900, max_lifetime_seconds=3600)),
        }
    )
    answer = await policies(reads, Sink()).read("p1")
    assert answer.policy == Policy(idle_timeout_seconds=900, max_lifetime_seconds=3600)
    assert (answer.set_at, answer.event_id, answer.set_by) == (T0, "ev-p1", "admin-1")
    found = sources(answer.effective)
    assert found["idleTimeoutSeconds"] == (900, "project")
    assert found["maxLifetimeSeconds"] == (3600, "project")
    assert found["neverPause"] == (False, "default")
    assert found["warnBeforeSeconds"] == (30, "setting")
    default = await policies(reads, Sink()).read(None)
    assert default.project_id is None
    assert default.policy == Policy(idle_timeout_seconds=300, never_pause=False)
    assert sources(default.effective)["idleTimeoutSeconds"] == (300, "default")


async def test_setting_a_project_policy_publishes_its_fact_and_answers_what_will_be_in_force() -> (
    None
):
    reads, sink = Reads({None: stored(None, Policy(never_pause=True))}), Sink()
    new = Policy(idle_timeout_seconds=600)
    accepted = await policies(reads, sink).set("p1", new, "ops@example")
    (fact,) = sink.facts
    assert fact.type is FactType.POLICY_SET
    assert fact.source is Source.ADMIN
    assert fact.sandbox_id == policy_subject("p1")  # the record key: one partition per project
    assert (fact.event_id, fact.occurred_at) == (accepted.event_id, T0)
    assert policy_view(fact) == ("p1", new, None)
    assert fact.data["actor"] == "ops@example"
    found = sources(accepted.effective)
    assert found["idleTimeoutSeconds"] == (600, "project")
    assert found["neverPause"] == (True, "default")


async def test_setting_the_default_reads_nothing_and_ranks_it_over_the_settings() -> None:
    reads, sink = Reads({"p1": stored("p1", Policy(idle_timeout_seconds=900))}), Sink()
    accepted = await policies(reads, sink).set(None, Policy(idle_timeout_seconds=60), None)
    assert reads.asked == []
    assert policy_view(sink.facts[0]) == (None, Policy(idle_timeout_seconds=60), None)
    assert sink.facts[0].sandbox_id == policy_subject(None)
    assert sources(accepted.effective)["idleTimeoutSeconds"] == (60, "default")


# The whole app, its lifespan (Kafka, Redis) left out: the routes with fakes behind them.


@dataclass
class App:
    client: TestClient[Any]
    reads: Reads
    sink: Sink

    def headers(self, *projects: str, admin: bool = False) -> dict[str, str]:
        claims = Claims(list(projects), admin, 600, int(time.time()), subject="ops")
        return {"Authorization": f"Bearer {mint(SECRET, claims)}"}


@pytest.fixture
def app(monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    settings = StatusApiSettings(status_api_jwt_secret=SECRET, idle_timeout_seconds=240)
    parts = StatusApiParts(settings)

    @asynccontextmanager
    async def nothing(_app: object) -> AsyncIterator[None]:
        yield

    monkeypatch.setattr(parts, "running", nothing)
    reads, sink = Reads(), Sink()
    setting = parts.deps.policies.setting
    parts.deps = replace(parts.deps, policies=Policies(reads, sink, setting, lambda: T0))
    with TestClient(create_app(parts, settings)) as client:
        yield App(client, reads, sink)


def test_the_settings_are_the_bottom_level(app: App) -> None:
    r = app.client.get("/api/policy/default", headers=app.headers(admin=True))
    assert r.status_code == 200
    assert r.json()["effective"]["idleTimeoutSeconds"] == {"value": 240, "source": "setting"}
    assert "projectId" not in r.json()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {"quietHours": {"start": "22:00", "end": "06:00", "timezone": "Mars/Olympus"}},
            "quietHours.timezone",
        ),
        ({"idleTimeoutSeconds": 5}, "idleTimeoutSeconds"),
        ({"idleTimeoutSeconds": 8 * 86_400}, "idleTimeoutSeconds"),
        ({"idleTimout": 600}, "idleTimout"),
    ],
)
@pytest.mark.parametrize("path", ["/api/projects/p1/policy", "/api/policy/default"])
def test_an_invalid_policy_is_a_422_naming_the_field_and_publishes_nothing(
    app: App, path: str, body: dict[str, Any], field: str
) -> None:
    r = app.client.put(path, content=json.dumps(body), headers=app.headers(admin=True))
    assert r.status_code == 422, r.text
    answer = r.json()
    assert (answer["status_code"], answer["field"]) == (422, field)
    assert answer["detail"] == f"{field}: {answer['reason']}"
    assert app.sink.facts == []


def test_a_body_that_is_no_json_object_is_a_422_about_the_body(app: App) -> None:
    r = app.client.put("/api/policy/default", content=b"[1", headers=app.headers(admin=True))
    assert (r.status_code, r.json()["field"]) == (422, "")
    assert app.sink.facts == []


@pytest.mark.parametrize(
    ("timezone", "field"),
    [
        # Found by hand: ZoneInfo raises OSError for a name too long for a file name (a 503
        # "store unavailable" here), and msgspec UnicodeDecodeError for invalid UTF-8 (a 500).
        (b'"' + b"a" * 5000 + b'"', "quietHours.timezone"),
        (b'"\xff"', ""),
    ],
)
def test_hostile_time_zones_are_a_422_too(app: App, timezone: bytes, field: str) -> None:
    body = b'{"quietHours": {"start": "22:00", "end": "06:00", "timezone": ' + timezone + b"}}"
    r = app.client.put("/api/policy/default", content=body, headers=app.headers(admin=True))
    assert (r.status_code, r.json()["field"]) == (422, field), r.text
    assert app.sink.facts == []


def test_a_valid_put_is_202_with_the_event_and_the_effective_values(app: App) -> None:
    body = {"idleTimeoutSeconds": 600, "warnBeforeSeconds": 0}
    r = app.client.put(
        "/api/projects/p1/policy", content=json.dumps(body), headers=app.headers(admin=True)
    )
    assert r.status_code == 202, r.text
    answer = r.json()
    assert answer["projectId"] == "p1"
    assert answer["policy"] == body
    assert answer["eventId"] == app.sink.facts[0].event_id
    assert app.sink.facts[0].data["actor"] == "ops"
    assert answer["effective"]["warnBeforeSeconds"] == {"value": 0, "source": "project"}
    assert answer["effective"]["neverPause"] == {"value": None, "source": "setting"}


def test_only_an_admin_may_set_a_policy_even_with_a_broken_body(app: App) -> None:
    owner = app.headers("p1")
    for path in ("/api/projects/p1/policy", "/api/policy/default"):
        r = app.client.put(path, content=b"{broken", headers=owner)
        assert r.status_code == 403, r.text  # refused before the body is read
        assert app.client.put(path, content=b"{}").status_code == 401
    assert app.sink.facts == []


def test_a_project_token_reads_its_own_policy_only(app: App) -> None:
    app.reads.rows["p1"] = stored("p1", Policy(never_pause=True))
    mine = app.client.get("/api/projects/p1/policy", headers=app.headers("p1"))
    assert mine.status_code == 200
    assert mine.json()["policy"] == {"neverPause": True}
    assert mine.json()["setAt"] == T0.isoformat().replace("+00:00", "Z")
    other = app.client.get("/api/projects/p2/policy", headers=app.headers("p1"))
    assert other.status_code == 403
    assert b"neverPause" not in other.content
    assert app.client.get("/api/policy/default", headers=app.headers("p1")).status_code == 403
    assert app.client.get("/api/policies", headers=app.headers("p1")).status_code == 403


@pytest.mark.parametrize("project", ["p" * 257, "p%00"])
def test_a_project_id_no_fact_may_carry_is_a_400(app: App, project: str) -> None:
    r = app.client.put(
        f"/api/projects/{project}/policy", content=b"{}", headers=app.headers(admin=True)
    )
    assert r.status_code == 400, r.text
    assert app.sink.facts == []
    longest = "p" * 256
    ok = app.client.put(
        f"/api/projects/{longest}/policy", content=b"{}", headers=app.headers(admin=True)
    )
    assert ok.status_code == 202


def test_a_broker_outage_is_a_503_to_retry(app: App) -> None:
    app.sink.down = True
    r = app.client.put("/api/policy/default", content=b"{}", headers=app.headers(admin=True))
    assert r.status_code == 503
    assert r.headers["retry-after"]


def test_the_list_pages_through_the_projects_with_a_policy(app: App) -> None:
    app.reads.rows[None] = stored(None, Policy(idle_timeout_seconds=300))
    for project in ("p3", "p1", "p2"):
        app.reads.rows[project] = stored(project, Policy(never_pause=True))
    admin = app.headers(admin=True)
    first = app.client.get("/api/policies", params={"limit": 2}, headers=admin).json()
    assert first["default"]["policy"] == {"idleTimeoutSeconds": 300}
    assert [p["projectId"] for p in first["projects"]] == ["p1", "p2"]
    params = {"limit": 2, "cursor": first["nextCursor"]}
    second = app.client.get("/api/policies", params=params, headers=admin).json()
    assert [p["projectId"] for p in second["projects"]] == ["p3"]
    assert second["nextCursor"] is None


def test_openapi_documents_the_body_and_the_422(app: App) -> None:
    doc = app.client.get("/schema/openapi.json").json()
    for path in ("/api/projects/{project_id}/policy", "/api/policy/default"):
        put = doc["paths"][path]["put"]
        body = put["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": "#/components/schemas/Policy"}
        refused = put["responses"]["422"]["content"]["application/json"]["schema"]
        assert refused == {"$ref": "#/components/schemas/PolicyRefused"}
        assert {"202", "403", "503"} <= set(put["responses"])
    schemas = doc["components"]["schemas"]
    assert "idleTimeoutSeconds" in schemas["Policy"]["properties"]
    assert schemas["PolicyRefused"]["required"] == ["detail", "field", "reason", "status_code"]


# The adapter: rows as the projector stores them.


@dataclass
class Pool:
    rows: list[dict[str, Any]]
    queries: list[tuple[str, tuple[object, ...]]] = field(default_factory=list)

    async def fetch(self, query: str, *args: object) -> list[Any]:
        self.queries.append((query, args))
        wanted = args[0]
        if isinstance(wanted, list):
            return [r for r in self.rows if r["subject"] in wanted]
        return self.rows

    async def fetchrow(self, query: str, *args: object) -> Any:
        raise AssertionError("not used")

    async def fetchval(self, query: str, *args: object) -> object:
        raise AssertionError("not used")


def row(project_id: str | None, policy: object) -> dict[str, Any]:
    text = policy if isinstance(policy, str) else msgspec.json.encode(policy).decode()
    return {
        "subject": policy_subject(project_id),
        "project_id": project_id,
        "policy": text,
        "event_id": "ev",
        "set_at": T0,
        "actor": None,
    }


async def test_the_store_reads_the_default_and_the_project_in_one_query() -> None:
    quiet = {"start": "22:00", "end": "06:00", "timezone": "Europe/Paris"}
    pool = Pool([row(None, {"neverPause": True}), row("p1", {"quietHours": quiet})])
    levels = await PolicyStore(pool).levels("p1")
    assert levels.default is not None
    assert levels.default.policy == Policy(never_pause=True)
    assert levels.project is not None
    assert levels.project.policy.quiet_hours == QuietHours(
        start="22:00", end="06:00", timezone="Europe/Paris"
    )
    assert len(pool.queries) == 1
    only_default = await PolicyStore(pool).levels(None)
    assert (only_default.default is not None, only_default.project) == (True, None)


async def test_an_unreadable_stored_policy_is_a_store_error_not_a_422() -> None:
    pool = Pool([row(None, {"idleTimeoutSeconds": 1})])
    with pytest.raises(StoredPolicyError, match="policy:default"):
        await PolicyStore(pool).levels(None)
