"""deploy/k8s: schema-valid manifests, probes, autoscaling, disruption budgets, hardening."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.settings import load_settings
from tests.deploy.deployfiles import (
    K8S,
    SERVICES,
    applied_manifests,
    container_env,
    k8s_documents,
    k8s_objects,
    kustomization,
    secret_templates,
    settings_class,
)
from tests.deploy.tools import kubectl, run, tool

#: Health endpoint and the setting holding the port, per service.
HEALTH = {
    "gateway": ("/api/v1/health", "port"),
    "validator": ("/health", "validator_port"),
    "lb": ("/health", "port"),
}


def kubernetes_validate(*paths: Path) -> tuple[int, str]:
    """kubernetes-validate --strict with its bundled (offline) schemas."""
    result = run(tool("kubernetes-validate"), "--strict", "--quiet", *map(str, paths))
    return result.returncode, result.stdout + result.stderr


def objects() -> dict[tuple[str, str], dict[str, Any]]:
    return k8s_objects(applied_manifests())


def deployment(service: str) -> dict[str, Any]:
    return objects()[("Deployment", service)]


def pod_spec(service: str) -> dict[str, Any]:
    return deployment(service)["spec"]["template"]["spec"]


def container(service: str) -> dict[str, Any]:
    (only,) = pod_spec(service)["containers"]
    return only


def service_settings(service: str) -> Any:
    everything = k8s_objects([*applied_manifests(), *secret_templates()])
    return load_settings(settings_class(service), container_env(container(service), everything))


# --------------------------------------------------------------------------- schemas


def test_every_manifest_and_secret_template_is_schema_valid() -> None:
    code, output = kubernetes_validate(*applied_manifests(), *secret_templates())
    assert code == 0, output


def test_schema_check_rejects_a_broken_manifest(tmp_path: Path) -> None:
    text = (K8S / "gateway.yaml").read_text()
    broken = tmp_path / "gateway.yaml"
    broken.write_text(text.replace("minReplicas: 2", "minReplicas: two", 1))
    assert kubernetes_validate(broken)[0] != 0
    broken.write_text(text.replace("minAvailable: 1", "minAvailable: 1\n  bogus: 1", 1))
    assert kubernetes_validate(broken)[0] != 0


def test_kustomize_output_is_schema_valid(tmp_path: Path) -> None:
    result = run(kubectl(), "kustomize", str(K8S))
    assert result.returncode == 0, result.stderr
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(result.stdout)
    code, output = kubernetes_validate(rendered)
    assert code == 0, output
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == "audio-subnet", doc["metadata"]
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "audio-subnet"
    assert not [d for d in docs if d["kind"] == "Secret"], "Secrets must not be applied"
    images = {
        c["image"]
        for d in docs
        if d["kind"] in ("Deployment", "StatefulSet")
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert images == {f"audio-subnet/{s}:0.1.0" for s in SERVICES} | {"redis:7"}


def test_kustomization_applies_every_manifest_but_not_the_secret_templates() -> None:
    listed = set(kustomization()["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk
    assert secret_templates(), "secret templates missing"
    for template in secret_templates():
        text = template.read_text()
        assert "TEMPLATE ONLY" in text and "kubectl" in text and "create secret" in text
        for doc in k8s_documents(template):
            assert doc["kind"] == "Secret"
            assert all("PLACEHOLDER" in str(v) for v in doc["stringData"].values()), template


# --------------------------------------------------------------------------- workloads


@pytest.mark.parametrize("service", SERVICES)
def test_probes_hit_the_health_endpoint_on_the_configured_port(service: str) -> None:
    path, port_setting = HEALTH[service]
    spec = container(service)
    (http,) = [p for p in spec["ports"] if p["name"] == "http"]
    assert http["containerPort"] == getattr(service_settings(service), port_setting)
    for probe in ("readinessProbe", "livenessProbe"):
        assert spec[probe]["httpGet"] == {"path": path, "port": "http"}, (service, probe)
        assert spec[probe]["timeoutSeconds"] >= 3
    # Liveness tolerates longer trouble than readiness: dependencies' outages
    # (Redis, WhisperX) take pods out of rotation without restarting them at once.
    live, ready = spec["livenessProbe"], spec["readinessProbe"]
    assert live["periodSeconds"] * live["failureThreshold"] > ready["periodSeconds"] * ready.get(
        "failureThreshold", 3
    )


def test_gateway_probe_outlasts_the_health_endpoint_redis_timeout() -> None:
    settings = service_settings("gateway")
    assert container("gateway")["readinessProbe"]["timeoutSeconds"] > settings.health_timeout


def test_validator_is_given_time_to_release_its_tasks() -> None:
    settings = service_settings("validator")
    assert pod_spec("validator")["terminationGracePeriodSeconds"] > settings.shutdown_grace
    startup = container("validator")["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] > settings.chain_timeout


@pytest.mark.parametrize("service", SERVICES)
def test_services_route_to_the_named_port_of_their_pods(service: str) -> None:
    svc = objects()[("Service", service)]
    labels = deployment(service)["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= labels.items()
    (port,) = svc["spec"]["ports"]
    assert port["targetPort"] == "http"
    (http,) = [p for p in container(service)["ports"] if p["name"] == "http"]
    assert port["port"] == http["containerPort"]


def workloads() -> list[tuple[str, dict[str, Any]]]:
    return [
        (name, obj["spec"]["template"]["spec"])
        for (kind, name), obj in objects().items()
        if kind in ("Deployment", "StatefulSet")
    ]


def test_every_pod_runs_non_root_read_only_and_with_resources() -> None:
    assert {name for name, _ in workloads()} == {*SERVICES, "redis"}
    for name, spec in workloads():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] > 0, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        for c in spec["containers"]:
            context = c["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            for kind in ("requests", "limits"):
                assert set(c["resources"][kind]) == {"cpu", "memory"}, (name, kind)


def test_gateway_and_validator_autoscale_and_keep_a_pod_through_disruptions() -> None:
    objs = objects()
    for service in ("gateway", "validator"):
        hpa = objs[("HorizontalPodAutoscaler", service)]
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": service,
        }
        assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
        # The HPA owns the replica count; a fixed one would be reset on every apply.
        assert "replicas" not in deployment(service)["spec"]
        pdb = objs[("PodDisruptionBudget", service)]
        labels = deployment(service)["spec"]["template"]["metadata"]["labels"]
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
        assert pdb["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]


def test_lb_is_a_single_replica_without_autoscaler() -> None:
    assert deployment("lb")["spec"]["replicas"] == 1
    kinds = {kind for kind, name in objects() if name == "lb"}
    assert kinds == {"Deployment", "Service"}


def test_validator_wallet_secret_is_mounted_where_the_settings_look() -> None:
    settings = service_settings("validator")
    (mount,) = [m for m in container("validator")["volumeMounts"] if m["name"] == "wallet"]
    assert mount["mountPath"] == settings.bt_wallet_path and mount["readOnly"] is True
    (volume,) = [v for v in pod_spec("validator")["volumes"] if v["name"] == "wallet"]
    paths = {item["key"]: item["path"] for item in volume["secret"]["items"]}
    wallet, hotkey = settings.bt_wallet_name, settings.bt_wallet_hotkey
    assert paths == {
        "coldkeypub.txt": f"{wallet}/coldkeypub.txt",
        "hotkey": f"{wallet}/hotkeys/{hotkey}",
        "hotkeypub.txt": f"{wallet}/hotkeys/{hotkey}pub.txt",
    }
    # Only public coldkey and hotkey: the coldkey itself never enters the cluster.
    template = k8s_objects(secret_templates())[("Secret", volume["secret"]["secretName"])]
    assert set(template["stringData"]) == set(paths)


def test_redis_is_a_statefulset_with_aof_on_a_persistent_volume() -> None:
    objs = objects()
    redis = objs[("StatefulSet", "redis")]
    spec = redis["spec"]
    (claim,) = spec["volumeClaimTemplates"]
    (c,) = spec["template"]["spec"]["containers"]
    args = " ".join(c["args"])
    assert "--appendonly yes" in args and "--appendfsync everysec" in args
    (mount,) = c["volumeMounts"]
    assert mount == {"name": claim["metadata"]["name"], "mountPath": "/data"}
    assert objs[("Service", spec["serviceName"])]["spec"]["clusterIP"] == "None"
    # The clients' REDIS_HOST is the redis Service, on the container's port.
    settings = service_settings("gateway")
    (port,) = objs[("Service", settings.redis_host)]["spec"]["ports"]
    assert port["port"] == settings.redis_port == c["ports"][0]["containerPort"]
