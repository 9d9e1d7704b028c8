"""infra/local/kafka.sh's generated configs, written into a temporary state folder by its
`config` command (no Java, no broker): one node as it always was, or a three-node KRaft cluster
whose nodes agree on one quorum and take ports and files of their own."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

INFRA = Path(__file__).parents[2] / "infra" / "local"


def run(script: str, state: Path, args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    # Only what the scripts need: a KAFKA_* of the caller's shell must not leak into the check.
    base = {"PATH": os.environ["PATH"], "HOME": str(state), "STATE_DIR": str(state)}
    return subprocess.run(
        ["bash", str(INFRA / script), *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def properties(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    pairs = (line.partition("=") for line in lines if line and not line.startswith("#"))
    return {key: value for key, _, value in pairs}


def configs(state: Path, **env: str) -> list[dict[str, str]]:
    done = run("kafka.sh", state, ["config"], **env)
    assert done.returncode == 0, done.stderr
    found = sorted((state / "kafka").glob("**/server.properties"))
    return [properties(p) for p in found]


def ports(config: dict[str, str]) -> set[int]:
    return {int(listener.rsplit(":", 1)[1]) for listener in config["listeners"].split(",")}


def test_one_node_keeps_the_files_and_ports_it_always_had(tmp_path: Path) -> None:
    (node,) = configs(tmp_path)
    assert (tmp_path / "kafka" / "server.properties").is_file()
    assert node["node.id"] == "1"
    assert node["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert ports(node) == {9092, 9093, 9094}  # PLAINTEXT, CONTROLLER, SASL_SSL
    assert node["log.dirs"] == str(tmp_path / "data" / "kafka")
    assert node["default.replication.factor"] == node["offsets.topic.replication.factor"] == "1"
    assert node["min.insync.replicas"] == "1"


def test_three_nodes_form_one_quorum_with_ports_and_files_of_their_own(tmp_path: Path) -> None:
    nodes = configs(tmp_path, KAFKA_BROKERS="3")
    assert [n["node.id"] for n in nodes] == ["1", "2", "3"]
    voters = {n["controller.quorum.voters"] for n in nodes}
    assert voters == {"1@127.0.0.1:9093,2@127.0.0.1:9193,3@127.0.0.1:9293"}
    assert [ports(n) for n in nodes] == [
        {9092, 9093, 9094},
        {9192, 9193, 9194},
        {9292, 9293, 9294},
    ]
    assert [n["advertised.listeners"] for n in nodes] == [
        f"PLAINTEXT://127.0.0.1:{p},SASL_SSL://127.0.0.1:{p + 2}" for p in (9092, 9192, 9292)
    ]
    assert len({n["log.dirs"] for n in nodes}) == 3
    for n in nodes:
        assert n["process.roles"] == "broker,controller"
        for key in ("default", "offsets.topic", "transaction.state.log"):
            assert n[f"{key}.replication.factor"] == "3", key
        assert n["min.insync.replicas"] == n["transaction.state.log.min.isr"] == "2"
        # A killed node must leave its partitions' leaders and in-sync sets within seconds.
        assert int(n["broker.session.timeout.ms"]) <= 3000
    for config in (tmp_path / "kafka").glob("node-*/server.properties"):
        assert config.stat().st_mode & 0o077 == 0, f"{config}: it holds the SASL password"
    # What a SASL_SSL client is given (up.sh KAFKA_SECURITY=sasl_ssl): every node's listener.
    env = properties(tmp_path / "kafka" / "sasl-ssl.env")
    assert env["KAFKA_SASL_SSL_BOOTSTRAP_SERVERS"] == (
        "127.0.0.1:9094,127.0.0.1:9194,127.0.0.1:9294"
    )


def test_the_nodes_follow_moved_base_ports(tmp_path: Path) -> None:
    """The fault suite's own cluster: its base ports, stepped per node like the default ones."""
    moved = {
        "KAFKA_PORT": "19092",
        "KAFKA_CONTROLLER_PORT": "19093",
        "KAFKA_SASL_SSL_PORT": "19094",
    }
    nodes = configs(tmp_path, KAFKA_BROKERS="3", **moved)
    assert [ports(n) for n in nodes] == [
        {19092, 19093, 19094},
        {19192, 19193, 19194},
        {19292, 19293, 19294},
    ]


@pytest.mark.parametrize("brokers", ["2", "0", "three"])
def test_a_cluster_size_other_than_one_or_three_is_refused(tmp_path: Path, brokers: str) -> None:
    done = run("kafka.sh", tmp_path, ["config"], KAFKA_BROKERS=brokers)
    assert done.returncode != 0
    assert f"KAFKA_BROKERS={brokers}" in done.stderr
    assert not (tmp_path / "kafka").exists()


def test_the_clients_are_given_every_node(tmp_path: Path) -> None:
    shell = f'source "{INFRA}/lib.sh"; source "{INFRA}/kafka_nodes.sh"; kafka_bootstrap 3'
    done = subprocess.run(
        ["bash", "-c", shell],
        env={"PATH": os.environ["PATH"], "STATE_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "127.0.0.1:9092,127.0.0.1:9192,127.0.0.1:9292"
