"""The chart on a real cluster (issue 16, item 6): a PodDisruptionBudget for every component
unless it would block every drain, CPU autoscaling of the HTTP services, KEDA autoscaling of the
consumers on their group's lag (optional, capped by the topic's partitions), each component's
resources and its own E2B call budget."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.deploy.test_chart import (
    CHART,
    COMPONENTS,
    DEFAULT,
    KUBE,
    Render,
    by_kind,
    deployments,
    refused_render,
    render,
    run_helm,
)

__all__ = ["render"]  # the fixture, shared with test_chart

FULL = CHART / "ci" / "full-values.yaml"
DEV = CHART / "ci" / "dev-rollback-values.yaml"
# Who calls E2B (and so has a budget): the actuator's commands, the reconciler in the enforcer.
CALLS_E2B = {"actuator", "enforcer"}
BUDGET_VARS = {
    "E2B_RATE_PER_SECOND",
    "E2B_RATE_BURST",
    "E2B_MAX_CONCURRENCY",
    "E2B_TIMEOUT_SECONDS",
}


def pdbs(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        d["metadata"]["labels"]["app.kubernetes.io/component"]: d
        for d in docs
        if d["kind"] == "PodDisruptionBudget"
    }


def env_of(deployment: dict[str, Any]) -> dict[str, str | None]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value") for e in container["env"]}


def test_every_component_has_a_disruption_budget_selecting_its_own_pods(render: Render) -> None:
    docs = render(DEFAULT)
    budgets = pdbs(docs)
    assert set(budgets) == COMPONENTS
    for name, budget in budgets.items():
        labels = deployments(docs)[name]["spec"]["template"]["metadata"]["labels"]
        selector = budget["spec"]["selector"]["matchLabels"]
        assert selector.items() <= labels.items(), name
        assert selector["app.kubernetes.io/component"] == name
        assert budget["spec"] == {"minAvailable": 1, "selector": budget["spec"]["selector"]}


def test_a_budget_one_replica_cannot_meet_is_not_rendered(render: Render) -> None:
    """minAvailable 1 over a single replica allows no eviction at all: every node drain would
    hang on it. The chart leaves such a budget out (and says so in NOTES) rather than block."""
    docs = render(DEFAULT, "projector.replicas=1", "actuator.replicas=1")
    assert set(pdbs(docs)) == COMPONENTS - {"projector", "actuator"}
    # maxUnavailable never blocks a drain: kept with one replica.
    kept = render(DEFAULT, "projector.replicas=1", "projector.podDisruptionBudget.maxUnavailable=1")
    assert pdbs(kept)["projector"]["spec"]["maxUnavailable"] == 1
    assert "minAvailable" not in pdbs(kept)["projector"]["spec"]
    # A percentage that rounds up to every pod blocks as well.
    assert "ingest" not in pdbs(render(DEFAULT, "ingest.podDisruptionBudget.minAvailable=100%"))
    assert "ingest" in pdbs(render(DEFAULT, "ingest.podDisruptionBudget.minAvailable=50%"))
    # Under autoscaling the fewest replicas is the autoscaler's minimum.
    hpa = render(
        DEFAULT,
        "ingest.autoscaling.enabled=true",
        "ingest.autoscaling.minReplicas=1",
        "ingest.replicas=3",
    )
    assert "ingest" not in pdbs(hpa)
    assert pdbs(render(DEV)) == {}


def test_max_unavailable_replaces_min_available_and_one_is_needed(
    render: Render, helm: str
) -> None:
    """Kubernetes refuses a budget with both; the chart's default sets minAvailable, so a
    maxUnavailable given replaces it rather than having to null the default."""
    docs = render(FULL)
    spec = pdbs(docs)["actuator"]["spec"]
    assert (spec.get("maxUnavailable"), "minAvailable" in spec) == (1, False)
    result = run_helm(
        helm,
        "template",
        "rel",
        ".",
        "--kube-version",
        KUBE,
        "-f",
        str(DEFAULT),
        "--set",
        "enforcer.podDisruptionBudget.minAvailable=null",
    )
    assert result.returncode != 0
    assert "enforcer.podDisruptionBudget: set minAvailable or maxUnavailable" in result.stderr


def test_the_http_services_scale_on_cpu_and_the_consumers_on_their_lag(render: Render) -> None:
    docs = render(FULL)
    hpas = by_kind(docs, "HorizontalPodAutoscaler")
    assert set(hpas) == {"rel-e2b-lifecycle-ingest", "rel-e2b-lifecycle-status-api"}
    for hpa in hpas.values():
        assert hpa["apiVersion"] == "autoscaling/v2"
        (metric,) = hpa["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"
    scaled = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ScaledObject"}
    assert set(scaled) == {"rel-e2b-lifecycle-projector", "rel-e2b-lifecycle-actuator"}
    given = yaml.safe_load(FULL.read_text())
    expected = {
        # component: (topic, consumer group, partitions: the most replicas that get work)
        "projector": ("sandbox-lifecycle", "sandbox-projector", 24),
        "actuator": ("sandbox-commands", "sandbox-actuator", 12),
    }
    found = deployments(docs)
    for component, (topic, group, partitions) in expected.items():
        obj = scaled[f"rel-e2b-lifecycle-{component}"]
        assert obj["apiVersion"] == "keda.sh/v1alpha1"
        spec = obj["spec"]
        assert spec["scaleTargetRef"]["name"] == f"rel-e2b-lifecycle-{component}"
        assert spec["maxReplicaCount"] == partitions
        assert spec["minReplicaCount"] == given[component]["keda"]["minReplicaCount"]
        (trigger,) = spec["triggers"]
        assert trigger["type"] == "kafka"
        meta = trigger["metadata"]
        assert meta["bootstrapServers"] == given["kafka"]["bootstrapServers"]
        assert (meta["topic"], meta["consumerGroup"]) == (topic, group)
        assert meta["lagThreshold"] == str(given[component]["keda"]["lagThreshold"])
        assert meta["allowIdleConsumers"] == "false"
        assert trigger["authenticationRef"]["name"] == "rel-e2b-lifecycle-kafka-keda"
        # KEDA owns the replica count: the Deployment leaves it unset.
        assert "replicas" not in found[component]["spec"]
    (auth,) = by_kind(docs, "TriggerAuthentication").values()
    refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["spec"]["secretTargetRef"]}
    secret = given["keda"]["authentication"]["secretName"]
    assert refs == {p: (secret, p) for p in ("sasl", "username", "password", "tls", "ca")}


def test_keda_is_off_unless_asked_and_authenticates_only_when_given_a_secret(
    render: Render,
) -> None:
    docs = render(DEFAULT)
    assert not [d for d in docs if d["apiVersion"].startswith("keda.sh/")]
    assert deployments(docs)["projector"]["spec"]["replicas"] == 2
    plain = render(DEFAULT, "projector.keda.enabled=true")
    (obj,) = [d for d in plain if d["kind"] == "ScaledObject"]
    (trigger,) = obj["spec"]["triggers"]
    assert "authenticationRef" not in trigger
    assert obj["spec"]["maxReplicaCount"] == 12  # kafka.topics.lifecyclePartitions
    assert by_kind(plain, "TriggerAuthentication") == {}


def test_the_consumer_group_follows_its_setting(render: Render) -> None:
    docs = render(
        DEFAULT, "actuator.keda.enabled=true", "config.extraEnv.ACTUATOR_GROUP_ID=actuator-blue"
    )
    (obj,) = [d for d in docs if d["kind"] == "ScaledObject"]
    assert obj["spec"]["triggers"][0]["metadata"]["consumerGroup"] == "actuator-blue"


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (
            ["projector.keda.enabled=true", "projector.keda.maxReplicaCount=13"],
            "projector.keda.maxReplicaCount (13) exceeds kafka.topics.lifecyclePartitions (12)",
        ),
        (
            ["actuator.keda.enabled=true", "actuator.keda.minReplicaCount=20"],
            "actuator.keda.minReplicaCount (20) exceeds its maxReplicaCount (12)",
        ),
        (["projector.keda.lagThreshold=0"], "lagThreshold"),
    ],
)
def test_bad_scaling_values_fail_with_the_reason(helm: str, sets: list[str], message: str) -> None:
    assert message in refused_render(helm, sets)


def test_each_component_gets_its_own_resources(render: Render) -> None:
    given = yaml.safe_load(FULL.read_text())
    values = {"ingest": "ingest", "status-api": "statusApi", "projector": "projector"}
    values |= {"enforcer": "enforcer", "actuator": "actuator"}
    found = deployments(render(FULL))
    seen = set()
    for name, key in values.items():
        (container,) = found[name]["spec"]["template"]["spec"]["containers"]
        assert container["resources"] == given[key]["resources"], name
        seen.add(str(container["resources"]))
    assert len(seen) == len(values)  # the ci values give each its own: none is a shared default


def test_each_e2b_caller_gets_its_own_call_budget(render: Render) -> None:
    given = yaml.safe_load(FULL.read_text())
    found = deployments(render(FULL))
    for name, deployment in found.items():
        env = env_of(deployment)
        if name not in CALLS_E2B:
            assert not BUDGET_VARS & set(env), name
            continue
        budget = given[name]["e2bBudget"]
        assert env["E2B_RATE_PER_SECOND"] == str(budget["ratePerSecond"]), name
        assert env["E2B_RATE_BURST"] == str(budget["burst"]), name
        assert env["E2B_MAX_CONCURRENCY"] == str(budget["maxConcurrency"]), name
        assert env["E2B_TIMEOUT_SECONDS"] == str(budget["timeoutSeconds"]), name
    assert (
        env_of(found["actuator"])["E2B_RATE_PER_SECOND"]
        != (env_of(found["enforcer"])["E2B_RATE_PER_SECOND"])
    )


def test_the_ci_values_turn_every_scaling_feature_on() -> None:
    given = yaml.safe_load(FULL.read_text())
    assert given["ingest"]["autoscaling"]["enabled"]
    assert given["statusApi"]["autoscaling"]["enabled"]
    assert given["projector"]["keda"]["enabled"]
    assert given["actuator"]["keda"]["enabled"]
    assert given["keda"]["authentication"]["secretName"]
