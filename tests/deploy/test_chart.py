"""The Helm chart: `helm lint` and `helm template` over the ci/ values files, every rendered
manifest validated offline against the Kubernetes schemas (kubernetes-validate), and what matters
asserted: secret references, probes, replicas, security context, the init hook, setting names."""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from sandboxctl.settings import Settings

CHART = Path(__file__).parents[2] / "deploy" / "helm" / "e2b-lifecycle"
DEFAULT = CHART / "ci" / "default-values.yaml"
VALUES = sorted((CHART / "ci").glob("*.yaml"))
KUBE = "1.31.0"
COMPONENTS = {"ingest", "status-api", "projector", "enforcer", "actuator"}
# Each component reads only the secrets it needs.
SECRETS = {
    "ingest": {"E2B_WEBHOOK_SECRET", "E2B_WEBHOOK_SECRETS"},  # the second optional (rotation)
    "status-api": {"STATUS_API_JWT_SECRET"},
    "actuator": {"E2B_API_KEY"},
    "projector": set(),
    # The reconciler (in the enforcer process) pages through E2B's list API.
    "enforcer": {"E2B_API_KEY"},
}
# Who reads PostgreSQL: the projector (state), status-api (history, fleet), the enforcer
# (the reconciler compares our states with E2B's list).
USES_POSTGRESQL = {"projector", "status-api", "enforcer"}
SETTINGS = {f.name.upper() for f in dataclasses.fields(Settings)}
TOPIC_LAYOUT = {
    "LIFECYCLE_PARTITIONS",
    "COMMANDS_PARTITIONS",
    "DLQ_PARTITIONS",
    "KAFKA_REPLICATION_FACTOR",
    "KAFKA_MIN_INSYNC_REPLICAS",
}
STORE_URLS = {"DATABASE_URL", "REDIS_URL"}  # from values or from a Secret of their own
Render = Callable[..., list[dict[str, Any]]]


def run_helm(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [helm, *args], capture_output=True, text=True, timeout=120, check=False, cwd=CHART
    )


def refused_render(helm: str, sets: list[str]) -> str:
    """Renders the default values with `sets`, expecting helm to refuse: its stderr."""
    args = ["template", "rel", ".", "--kube-version", KUBE, "-f", str(DEFAULT)]
    for s in sets:
        args += ["--set", s]
    result = run_helm(helm, *args)
    assert result.returncode != 0
    return result.stderr


@pytest.fixture(scope="module")
def render(helm: str) -> Render:
    def render(values: Path, *sets: str) -> list[dict[str, Any]]:
        args = ["template", "rel", ".", "--kube-version", KUBE, "-f", str(values)]
        for s in sets:
            args += ["--set", s]
        result = run_helm(helm, *args)
        assert result.returncode == 0, result.stderr
        return [d for d in yaml.safe_load_all(result.stdout) if d]

    return render


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def deployments(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        d["metadata"]["labels"]["app.kubernetes.io/component"]: d
        for d in docs
        if d["kind"] == "Deployment"
    }


@pytest.mark.parametrize("values", VALUES, ids=lambda p: p.stem)
def test_helm_lint_passes(helm: str, values: Path) -> None:
    result = run_helm(helm, "lint", ".", "--strict", "--kube-version", KUBE, "-f", str(values))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values", VALUES, ids=lambda p: p.stem)
def test_every_manifest_is_valid_kubernetes(render: Render, values: Path) -> None:
    docs = render(values)
    validated = 0
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # the Prometheus operator's CRDs: checked in test_monitoring_resources
        if doc["apiVersion"].startswith("keda.sh/"):
            continue  # KEDA's CRDs (no schema offline): checked in test_chart_scaling
        kubernetes_validate.validate(doc, KUBE, strict=True)
        validated += 1
    assert validated >= 13  # 5 Deployments, 5 Services, ConfigMap, ServiceAccount, PDBs...


def test_a_broken_manifest_fails_validation() -> None:
    # The validator is not a rubber stamp: a port that is not a number is refused.
    bad = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "x"},
        "spec": {"ports": [{"port": "eighty"}]},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, KUBE, strict=True)


@pytest.mark.parametrize("values", VALUES, ids=lambda p: p.stem)
def test_pods_are_non_root_read_only_probed_and_bounded(render: Render, values: Path) -> None:
    found = deployments(render(values))
    assert set(found) == COMPONENTS
    for name, deployment in found.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        assert pod["automountServiceAccountToken"] is False, name
        (container,) = pod["containers"]
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True, name
        assert security["allowPrivilegeEscalation"] is False, name
        assert security["capabilities"]["drop"] == ["ALL"], name
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz", name
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz", name
        assert container["resources"]["requests"]["memory"], name
        assert container["resources"]["limits"]["memory"], name
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts == {"tmp": "/tmp"}, name  # noqa: S108 - the pod's emptyDir mount point


@pytest.mark.parametrize("values", VALUES, ids=lambda p: p.stem)
def test_secrets_come_from_the_secret_and_each_component_gets_only_its_own(
    render: Render, values: Path
) -> None:
    docs = render(values)
    given = yaml.safe_load(values.read_text())
    secret_name = given["secrets"].get("existingSecret") or "rel-e2b-lifecycle-secrets"
    assert bool(by_kind(docs, "Secret")) is not bool(given["secrets"].get("existingSecret"))
    for name, deployment in deployments(docs).items():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = {e["name"]: e for e in container["env"]}
        from_secret = {
            n
            for n, e in env.items()
            if "secretKeyRef" in e.get("valueFrom", {}) and n not in STORE_URLS
        }
        assert from_secret == SECRETS[name], name
        for var in from_secret:
            ref = env[var]["valueFrom"]["secretKeyRef"]
            assert (ref["name"], ref["key"]) == (secret_name, var), name
        names = set(env) | set(by_kind(docs, "ConfigMap")["rel-e2b-lifecycle-config"]["data"])
        assert names <= SETTINGS, (name, names - SETTINGS)
        assert ("DATABASE_URL" in env) is (name in USES_POSTGRESQL), name


def test_store_urls_can_come_from_an_existing_secret(render: Render) -> None:
    docs = render(CHART / "ci" / "full-values.yaml")
    (container,) = deployments(docs)["projector"]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {
        "name": "stores",
        "key": "database-url",
    }
    assert env["REDIS_URL"]["value"] == "redis://redis-master.data:6379/0"


def test_replicas_autoscaling_and_disruption_budgets(render: Render) -> None:
    full = render(CHART / "ci" / "full-values.yaml")
    found = deployments(full)
    assert "replicas" not in found["projector"]["spec"]  # KEDA's, on the group's lag
    assert found["enforcer"]["spec"]["replicas"] == 2  # safe: one lease holder ticks
    # Autoscaled Deployments leave replicas to the HPA.
    assert "replicas" not in found["ingest"]["spec"]
    assert "replicas" not in found["status-api"]["spec"]
    hpas = by_kind(full, "HorizontalPodAutoscaler")
    assert hpas["rel-e2b-lifecycle-ingest"]["spec"]["maxReplicas"] == 20
    assert set(hpas) == {"rel-e2b-lifecycle-ingest", "rel-e2b-lifecycle-status-api"}
    assert set(by_kind(full, "PodDisruptionBudget")) == {
        f"rel-e2b-lifecycle-{c}" for c in COMPONENTS
    }
    assert set(by_kind(full, "NetworkPolicy")) == {f"rel-e2b-lifecycle-{c}" for c in COMPONENTS}
    ingress = by_kind(full, "Ingress")["rel-e2b-lifecycle"]
    backends = {
        p["path"]: p["backend"]["service"]["name"]
        for p in ingress["spec"]["rules"][0]["http"]["paths"]
    }
    assert backends["/api/webhooks"] == "rel-e2b-lifecycle-ingest"
    assert backends["/api/projects"] == "rel-e2b-lifecycle-status-api"
    # Lifecycle policies: the default (/api/policy/default) and the list.
    assert backends["/api/policy"] == "rel-e2b-lifecycle-status-api"
    assert backends["/api/policies"] == "rel-e2b-lifecycle-status-api"
    dev = render(CHART / "ci" / "dev-rollback-values.yaml")
    assert {d["spec"]["replicas"] for d in deployments(dev).values()} == {1}
    assert by_kind(dev, "PodDisruptionBudget") == {}


def test_the_init_hook_creates_topics_then_migrates_before_install_and_upgrade(
    render: Render,
) -> None:
    docs = render(CHART / "ci" / "full-values.yaml")
    job = by_kind(docs, "Job")["rel-e2b-lifecycle-init"]
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["sandboxctl", "init"]
    assert container["image"] == "registry.example.com/e2b-lifecycle/sandboxctl:1.2.3"
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["LIFECYCLE_PARTITIONS"] == "24"
    assert set(env) <= SETTINGS | TOPIC_LAYOUT
    # The hook runs before the chart's ConfigMap and Secret exist: it may not reference them.
    assert "envFrom" not in container
    assert by_kind(render(CHART / "ci" / "dev-rollback-values.yaml"), "Job") == {}


def test_the_rollback_switches_reach_the_enforcer(render: Render) -> None:
    dev = render(CHART / "ci" / "dev-rollback-values.yaml")
    config = by_kind(dev, "ConfigMap")["rel-e2b-lifecycle-config"]["data"]
    assert (config["ENFORCER_DRY_RUN"], config["ENFORCER_ENABLED"]) == ("true", "true")
    off = render(CHART / "ci" / "default-values.yaml", "enforcer.enabled=false")
    assert by_kind(off, "ConfigMap")["rel-e2b-lifecycle-config"]["data"]["ENFORCER_ENABLED"] == (
        "false"
    )


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["projector.replicas=13"], "projector.replicas (13) exceeds"),
        (["actuator.replicas=20"], "actuator.replicas (20) exceeds"),
        (["kafka.topics.minInsyncReplicas=4"], "minInsyncReplicas exceeds"),
        (["secrets.existingSecret="], "set secrets.existingSecret"),
        (["postgresql.existingSecret="], "set postgresql.url or postgresql.existingSecret"),
        (["kafka.bootstrapServers=not a list"], "bootstrapServers"),
        (["enforcer.schedule=sometimes"], "enforcer/schedule"),
        (["ingest.replica=3"], "additional properties 'replica' not allowed"),
        (["config.extraEnv.lower_case=1"], "'lower_case' does not match pattern"),
        (["redis.readModelShards=0"], "readModelShards"),
    ],
)
def test_bad_values_fail_with_the_reason(helm: str, sets: list[str], message: str) -> None:
    args = ["template", "rel", ".", "--kube-version", KUBE, "-f", "ci/default-values.yaml"]
    for s in sets:
        args += ["--set", s]
    result = run_helm(helm, *args)
    assert result.returncode != 0
    assert message in result.stderr


def test_monitoring_resources(render: Render) -> None:
    docs = render(CHART / "ci" / "full-values.yaml")
    (monitor,) = by_kind(docs, "ServiceMonitor").values()
    assert monitor["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s"}]
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    services = by_kind(docs, "Service")
    assert len(services) == len(COMPONENTS)
    for service in services.values():
        assert service["spec"]["ports"][0]["name"] == "http"  # what the ServiceMonitor scrapes
    (rule,) = by_kind(docs, "PrometheusRule").values()
    assert rule["spec"] == yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
    dashboard = by_kind(docs, "ConfigMap")["rel-e2b-lifecycle-dashboard"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert '"uid": "e2b-lifecycle"' in dashboard["data"]["e2b-lifecycle.json"]
    assert by_kind(render(CHART / "ci" / "default-values.yaml"), "ServiceMonitor") == {}


@pytest.mark.parametrize("values", VALUES, ids=lambda p: p.stem)
def test_helm_test_pods_ask_each_components_service_for_readyz(
    render: Render, values: Path
) -> None:
    docs = render(values)
    pods = {
        d["metadata"]["name"]: d
        for d in docs
        if d["kind"] == "Pod" and d["metadata"]["annotations"]["helm.sh/hook"] == "test"
    }
    services = by_kind(docs, "Service")
    assert len(pods) == len(COMPONENTS)
    for name, service in services.items():
        component = name.removeprefix("rel-e2b-lifecycle-")
        pod = pods[f"rel-e2b-lifecycle-test-{component}"]["spec"]
        assert pod["restartPolicy"] == "Never"
        assert pod["securityContext"]["runAsNonRoot"] is True
        (container,) = pod["containers"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["resources"]["limits"]["memory"]
        port = service["spec"]["ports"][0]["port"]
        assert f'url = "http://{name}:{port}/readyz"' in container["command"][-1], component
        assert "answer.status == 200" in container["command"][-1]
    # Where network policies restrict who may connect, the test pods are among those allowed.
    for policy in by_kind(docs, "NetworkPolicy").values():
        peers = policy["spec"]["ingress"][0].get("from")
        if peers is None:
            continue  # no restriction
        selectors = [p["podSelector"]["matchLabels"] for p in peers if "podSelector" in p]
        assert {
            "app.kubernetes.io/instance": "rel",
            "app.kubernetes.io/component": "helm-test",
        } in (selectors), policy["metadata"]["name"]


def test_runbook_links_follow_the_published_operations_guide(render: Render) -> None:
    base = "https://docs.example.com/e2b-lifecycle/OPERATIONS.md"
    docs = render(
        CHART / "ci" / "full-values.yaml", f"metrics.prometheusRule.runbookBaseUrl={base}/"
    )
    (rule,) = by_kind(docs, "PrometheusRule").values()
    rules = [r for group in rule["spec"]["groups"] for r in group["rules"]]
    assert rules
    for r in rules:
        url = r["annotations"]["runbook_url"]
        assert url.startswith(f"{base}#"), (r["alert"], url)
        assert len(url) > len(base) + 1


def test_trusted_proxies_reach_the_services(render: Render) -> None:
    """Behind an ingress, without HTTP_TRUSTED_PROXIES every client shares the controller's
    address and with it the per-address budget of refused authentications (issue 15, item 8)."""
    values = CHART / "ci" / "default-values.yaml"
    with_proxies = by_kind(render(values, "config.trustedProxies=10.0.0.0/8"), "ConfigMap")
    (config,) = with_proxies.values()
    assert config["data"]["HTTP_TRUSTED_PROXIES"] == "10.0.0.0/8"
    (config,) = by_kind(render(values), "ConfigMap").values()
    assert "HTTP_TRUSTED_PROXIES" not in config["data"]


def test_the_redis_mode_and_shards_reach_every_service(render: Render) -> None:
    values = CHART / "ci" / "default-values.yaml"
    (config,) = by_kind(render(values), "ConfigMap").values()
    assert (config["data"]["REDIS_CLUSTER"], config["data"]["READ_MODEL_SHARDS"]) == ("false", "16")
    clustered = render(values, "redis.cluster=true", "redis.readModelShards=32")
    (config,) = by_kind(clustered, "ConfigMap").values()
    assert (config["data"]["REDIS_CLUSTER"], config["data"]["READ_MODEL_SHARDS"]) == ("true", "32")
