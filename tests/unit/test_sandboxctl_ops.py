"""`sandboxctl topics create|describe` and `status`: the topic layout, the use cases over a fake
admin, the fleet report, and the CLI's exit codes and one-line errors (no broker, no database)."""

from __future__ import annotations

import importlib.metadata
import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from sandbox_common import topics
from sandboxctl import cli, ops_cli, topics_cmd
from sandboxctl.errors import OperatorError
from sandboxctl.fleet import FleetSnapshot, report
from sandboxctl.topic_specs import TopicLayoutError, TopicSpec, TopicState, drift, wanted

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def state_of(spec: TopicSpec, **changes: object) -> TopicState:
    fields: dict[str, object] = {
        "name": spec.name,
        "partitions": spec.partitions,
        "replication_factor": spec.replication_factor,
        "under_replicated": 0,
        "configs": dict(spec.configs),
        "records": 10,
    }
    fields.update(changes)
    return TopicState(**fields)  # type: ignore[arg-type]


class FakeAdmin:
    def __init__(self, have: dict[str, TopicState], refuse: dict[str, str] | None = None) -> None:
        self.have = have
        self.refuse = refuse or {}
        self.created: list[TopicSpec] = []
        self.lag: dict[str, dict[int, int] | None] = {}

    async def existing(self, names: Sequence[str]) -> dict[str, TopicState]:
        return {n: s for n, s in self.have.items() if n in names}

    async def create(self, specs: Sequence[TopicSpec]) -> dict[str, str | None]:
        out: dict[str, str | None] = {}
        for spec in specs:
            if spec.name in self.refuse:
                out[spec.name] = self.refuse[spec.name]
            else:
                self.created.append(spec)
                self.have[spec.name] = state_of(spec, records=0)
                out[spec.name] = None
        return out

    async def group_lag(self, group_id: str, topic: str) -> dict[int, int] | None:
        return self.lag.get(group_id)


def test_the_state_topic_is_compacted_and_partitioned_like_the_lifecycle() -> None:
    specs = {s.name: s for s in wanted({"LIFECYCLE_PARTITIONS": "24"})}
    state = specs[topics.STATE]
    assert state.configs["cleanup.policy"] == "compact"
    assert state.partitions == specs[topics.LIFECYCLE].partitions == 24


def test_the_layout_keeps_facts_and_dead_letters_forever_and_follows_the_environment() -> None:
    specs = {s.name: s for s in wanted({})}
    assert list(specs) == [
        topics.LIFECYCLE,
        topics.COMMANDS,
        topics.LIFECYCLE_DLQ,
        topics.NOTIFICATIONS_DLQ,
        topics.STATE,
    ]
    assert (specs[topics.LIFECYCLE].partitions, specs[topics.LIFECYCLE_DLQ].partitions) == (12, 3)
    assert specs[topics.LIFECYCLE].configs["retention.ms"] == "-1"
    assert specs[topics.LIFECYCLE_DLQ].configs["retention.bytes"] == "-1"
    assert specs[topics.COMMANDS].configs["retention.ms"] == str(7 * 24 * 3600 * 1000)
    sized = wanted(
        {
            "LIFECYCLE_PARTITIONS": "24",
            "KAFKA_REPLICATION_FACTOR": "3",
            "KAFKA_MIN_INSYNC_REPLICAS": "2",
        }
    )
    assert sized[0].partitions == 24
    assert {s.replication_factor for s in sized} == {3}
    assert {s.configs["min.insync.replicas"] for s in sized} == {"2"}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LIFECYCLE_PARTITIONS": "0"}, "LIFECYCLE_PARTITIONS=0 must be at least 1"),
        ({"DLQ_PARTITIONS": "three"}, "DLQ_PARTITIONS='three' is not a whole number"),
        ({"KAFKA_MIN_INSYNC_REPLICAS": "2"}, "exceeds KAFKA_REPLICATION_FACTOR=1"),
    ],
)
def test_an_unusable_layout_setting_is_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(TopicLayoutError, match=message):
        wanted(env)


def test_drift_names_what_an_operator_must_act_on() -> None:
    spec = wanted({})[0]
    assert drift(spec, state_of(spec)) == []
    found = drift(
        spec,
        state_of(
            spec,
            partitions=6,
            under_replicated=2,
            configs={**spec.configs, "retention.ms": "604800000"},
        ),
    )
    assert found[0].startswith("6 partitions, 12 wanted")
    assert "retention.ms=604800000, -1 wanted" in found
    assert "2 under-replicated partition(s)" in found
    # More partitions than asked is fine (scaled up on purpose).
    assert drift(spec, state_of(spec, partitions=24)) == []


async def test_create_makes_only_what_is_missing_and_reports_the_rest() -> None:
    specs = wanted({})
    admin = FakeAdmin({specs[0].name: state_of(specs[0], partitions=6)})
    lines = await topics_cmd.create(admin, specs)
    assert [s.name for s in admin.created] == [
        topics.COMMANDS,
        topics.LIFECYCLE_DLQ,
        topics.NOTIFICATIONS_DLQ,
        topics.STATE,
    ]
    assert lines[0].startswith(f"{topics.LIFECYCLE}: exists (differs: 6 partitions, 12 wanted")
    assert lines[1] == f"{topics.COMMANDS}: created (12 partitions, replication factor 1)"
    # Idempotent: a second run creates nothing.
    again = await topics_cmd.create(admin, specs)
    assert len(admin.created) == 4
    assert all(": exists" in line for line in again)


async def test_create_fails_with_the_brokers_reason_after_creating_the_others() -> None:
    specs = wanted({})
    admin = FakeAdmin({}, refuse={topics.COMMANDS: "Replication factor: 3 larger than brokers"})
    with pytest.raises(OperatorError, match="sandbox-commands: Replication factor: 3 larger"):
        await topics_cmd.create(admin, specs)
    assert [s.name for s in admin.created] == [
        topics.LIFECYCLE,
        topics.LIFECYCLE_DLQ,
        topics.NOTIFICATIONS_DLQ,
        topics.STATE,
    ]


async def test_a_topic_the_broker_says_exists_is_reported_as_existing_not_created() -> None:
    # The broker's topic list lags a topic created a moment ago: listed as missing, then
    # refused by the create as already there (CI saw "created" printed for such a topic).
    specs = wanted({})
    admin = FakeAdmin({}, refuse={topics.COMMANDS: "exists"})
    lines = await topics_cmd.create(admin, specs)
    assert lines[1] == f"{topics.COMMANDS}: exists"
    assert lines[0] == f"{topics.LIFECYCLE}: created (12 partitions, replication factor 1)"


async def test_describe_shows_lag_per_group_and_flags_missing_topics() -> None:
    specs = wanted({})
    admin = FakeAdmin({s.name: state_of(s) for s in specs if s.name != topics.LIFECYCLE_DLQ})
    admin.lag = {"sandbox-projector": {0: 5, 1: 40}, "sandbox-actuator": None}
    lines, problems = await topics_cmd.describe(
        admin,
        specs,
        {"sandbox-projector": topics.LIFECYCLE, "sandbox-actuator": topics.COMMANDS},
    )
    assert problems == [f"{topics.LIFECYCLE_DLQ}: missing (run `sandboxctl topics create`)"]
    assert (
        "group sandbox-projector on sandbox-lifecycle: lag 45 records over 2 partitions "
        "(most: partition 1, 40)"
    ) in lines
    assert "group sandbox-actuator on sandbox-commands: no committed offsets" in lines


def snapshot(**changes: object) -> FleetSnapshot:
    fields: dict[str, object] = {
        "now": NOW,
        "by_status": {"RUNNING": 3, "PAUSED": 2},
        "last_event_at": NOW - timedelta(seconds=30),
        "idle_indexed": 3,
        "due": 0,
        "oldest_due_at": None,
        "transitional": 0,
        "oldest_transitional_at": None,
        "lease_holder": "ticker-a",
        "lease_ttl_seconds": 42.0,
    }
    fields.update(changes)
    return FleetSnapshot(**fields)  # type: ignore[arg-type]


def test_a_healthy_fleet_has_no_problems() -> None:
    lines, problems = report(snapshot(), stuck_after_seconds=300)
    assert problems == []
    assert lines[0] == "sandboxes (PostgreSQL): 5 (2 PAUSED, 3 RUNNING)"
    assert "enforcer lease: held by ticker-a (42s left)" in lines
    assert not [line for line in lines if line.startswith("note:")]


def test_overdue_sandboxes_without_a_lease_holder_say_the_enforcer_is_not_pausing() -> None:
    due_since = NOW - timedelta(seconds=301)
    _, problems = report(
        snapshot(due=4, oldest_due_at=due_since, lease_holder=None), stuck_after_seconds=300
    )
    assert problems == [
        "4 sandbox(es) due, the oldest for 301s (no ticker holds the lease): the enforcer is "
        "not pausing (see OPERATIONS.md, sandboxes not pausing)"
    ]
    # Due, but within one repair window: the next tick takes them, not a problem yet.
    _, fine = report(
        snapshot(due=4, oldest_due_at=NOW - timedelta(seconds=60)), stuck_after_seconds=300
    )
    assert fine == []


def test_a_long_transition_and_a_stale_index_are_reported() -> None:
    lines, problems = report(
        snapshot(
            idle_indexed=1, transitional=1, oldest_transitional_at=NOW - timedelta(seconds=700)
        ),
        stuck_after_seconds=300,
    )
    assert len(problems) == 1
    assert "PAUSING/STARTING for 700s" in problems[0]
    note = "note: PostgreSQL has 3 RUNNING, the idle index 1"
    assert any(line.startswith(note) for line in lines)


def test_cli_layout_errors_are_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LIFECYCLE_PARTITIONS", "0")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["topics", "create"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err == "sandboxctl topics create: LIFECYCLE_PARTITIONS=0 must be at least 1\n"


def test_cli_unreachable_kafka_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Port 9 (discard) on loopback: refused at once, no broker involved.
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["topics", "describe", "--timeout", "2"])
    assert exit_info.value.code == 1
    (line,) = capsys.readouterr().err.splitlines()
    # The cause, asked of the broker again: aiokafka's own error ("Unable to bootstrap") has none.
    assert line.startswith(
        "sandboxctl topics describe: Kafka not reachable at 127.0.0.1:9 (PLAINTEXT): "
        "ConnectionRefusedError("
    )
    assert line.endswith("; check KAFKA_BOOTSTRAP_SERVERS and KAFKA_SECURITY_*")


def test_cli_unreachable_postgres_is_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@127.0.0.1:9/none")
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["status"])
    assert exit_info.value.code == 1
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith("sandboxctl status: cannot connect to PostgreSQL (")
    assert line.endswith("check DATABASE_URL")
    assert ":p@" not in line  # the password in DATABASE_URL is never printed


class _Connected:
    """ops_cli's `KafkaAdmin(bootstrap, timeout)` context, answering from a FakeAdmin."""

    def __init__(self, admin: FakeAdmin) -> None:
        self.admin = admin

    def __call__(self, bootstrap: str, timeout: float) -> _Connected:
        return self

    async def __aenter__(self) -> FakeAdmin:
        return self.admin

    async def __aexit__(self, *exc: object) -> None:
        return None


def _drifted_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    specs = wanted({})
    have = {s.name: state_of(s) for s in specs}
    have[topics.LIFECYCLE_DLQ] = state_of(specs[2], partitions=1)
    admin = FakeAdmin(have)
    admin.lag = {"sandbox-projector": {0: 5, 1: 40}}
    monkeypatch.setattr(ops_cli, "KafkaAdmin", _Connected(admin))


def _exit_code(argv: list[str]) -> int | str | None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    return exit_info.value.code


def test_problems_found_and_a_usage_error_exit_with_different_codes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _drifted_broker(monkeypatch)
    assert _exit_code(["topics", "describe"]) == 3
    out = capsys.readouterr().out
    assert f"PROBLEM: {topics.LIFECYCLE_DLQ}: 1 partitions, 3 wanted" in out
    # argparse's own code for a mistyped option stays 2: a probe can tell them apart.
    assert _exit_code(["topics", "describe", "--no-such-option"]) == 2
    assert _exit_code(["status", "--no-such-option"]) == 2


def test_topics_describe_json_has_the_documented_keys(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _drifted_broker(monkeypatch)
    assert _exit_code(["topics", "describe", "--json"]) == 3
    document = json.loads(capsys.readouterr().out)
    assert set(document) == {"topics", "groups", "problems"}
    lifecycle = document["topics"][0]
    assert lifecycle == {
        "name": topics.LIFECYCLE,
        "partitions": 12,
        "replicationFactor": 1,
        "underReplicatedPartitions": 0,
        "minInsyncReplicas": 1,
        "retentionMs": -1,
        "records": 10,
    }
    projector, actuator = document["groups"]
    assert projector == {
        "group": "sandbox-projector",
        "topic": topics.LIFECYCLE,
        "lag": 45,
        "lagByPartition": {"0": 5, "1": 40},
    }
    assert actuator["lag"] is None
    assert actuator["lagByPartition"] is None
    (problem,) = document["problems"]
    assert problem.startswith(f"{topics.LIFECYCLE_DLQ}: 1 partitions, 3 wanted")


def test_status_json_has_the_documented_keys_and_the_same_exit_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    overdue = snapshot(due=4, oldest_due_at=NOW - timedelta(seconds=900), lease_holder=None)

    async def read(settings: object) -> FleetSnapshot:
        return overdue

    monkeypatch.setattr(ops_cli, "read_snapshot", read)
    assert _exit_code(["status", "--json"]) == 3
    document = json.loads(capsys.readouterr().out)
    assert document == {
        "sandboxes": 5,
        "byStatus": {"PAUSED": 2, "RUNNING": 3},
        "newestProjectedFactAt": "2026-01-01T11:59:30+00:00",
        "idleIndexed": 3,
        "due": 4,
        "oldestDueAt": "2026-01-01T11:45:00+00:00",
        "transitional": 0,
        "oldestTransitionalAt": None,
        "leaseHolder": None,
        "leaseTtlSeconds": 42.0,
        "problems": [document["problems"][0]],
    }
    assert document["problems"][0].startswith("4 sandbox(es) due, the oldest for 900s")


def test_version_comes_from_the_installed_package(capsys: pytest.CaptureFixture[str]) -> None:
    assert _exit_code(["--version"]) == 0
    assert capsys.readouterr().out == f"sandboxctl {importlib.metadata.version('sandboxctl')}\n"
