"""deploy/k8s-ha: the overlay that swaps the single Redis for the Bitnami chart's Redis with
Sentinel (deploy/k8s-ha/redis-values.yaml). Rendered with `kubectl kustomize`, checked against
the offline schemas, the chart values and the services' own settings validation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from devnet.sentinel import DOWN_AFTER_MS
from shared.settings import load_settings
from tests.deploy.deployfiles import DEPLOY, container_env, settings_class
from tests.deploy.test_k8s import kubernetes_validate
from tests.deploy.tools import kubectl, run

OVERLAY = DEPLOY / "k8s-ha"
VALUES = yaml.safe_load((OVERLAY / "redis-values.yaml").read_text())
RELEASE = "redis-ha"
#: Stands in for the Secret the chart creates (auth.enabled): its name and key are the chart's.
CHART_SECRET = {"stringData": {"redis-password": "from-the-chart"}}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], dict[str, Any]]:
    result = run(kubectl(), "kustomize", str(OVERLAY))
    assert result.returncode == 0, result.stderr
    path: Path = tmp_path_factory.mktemp("k8s-ha") / "rendered.yaml"
    path.write_text(result.stdout)
    code, output = kubernetes_validate(path)
    assert code == 0, output
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def test_the_chart_replaces_the_single_redis(rendered) -> None:
    assert ("StatefulSet", "redis") not in rendered  # no hand-written Redis left
    assert ("Service", "redis") not in rendered and ("Service", "redis-headless") not in rendered
    # The base policy would select the chart's pods too and cut their replication.
    assert ("NetworkPolicy", "redis-clients") not in rendered
    assert not [k for k in rendered if k[0] == "StatefulSet"]


def test_chart_values_turn_on_sentinel_and_persistence() -> None:
    assert VALUES["architecture"] == "replication"
    assert VALUES["sentinel"]["enabled"] is True
    assert VALUES["sentinel"]["quorum"] == VALUES["replica"]["replicaCount"] // 2 + 1
    assert VALUES["sentinel"]["downAfterMilliseconds"] == DOWN_AFTER_MS
    assert VALUES["auth"]["enabled"] and VALUES["auth"]["sentinel"]
    assert "appendonly yes" in VALUES["commonConfiguration"]
    assert VALUES["networkPolicy"] == {"enabled": True, "allowExternal": False}


@pytest.mark.parametrize("service", ["gateway", "validator"])
def test_services_reach_every_sentinel_of_the_release(rendered, service: str) -> None:
    deployment = rendered[("Deployment", service)]
    pod = deployment["spec"]["template"]
    assert pod["metadata"]["labels"][f"{RELEASE}-client"] == "true"  # allowExternal: false
    (container,) = pod["spec"]["containers"]
    objects = {**rendered, ("Secret", RELEASE): CHART_SECRET}
    if service == "validator":
        objects[("Secret", "validator-webhook")] = {"stringData": {"WEBHOOK_SECRET": "whsec_eA=="}}
    objects.setdefault(("Secret", "redis-url"), {"stringData": {}})
    env = container_env(container, objects, with_optional=False)
    settings = load_settings(settings_class(service), env)
    nodes = VALUES["replica"]["replicaCount"]
    assert settings.redis_sentinels == tuple(
        (f"{RELEASE}-node-{i}.{RELEASE}-headless.audio-subnet.svc.cluster.local", 26379)
        for i in range(nodes)
    )
    assert settings.redis_sentinel_master == VALUES["sentinel"]["masterSet"]
    assert settings.redis_password == settings.redis_sentinel_password == "from-the-chart"
    assert settings.redis_min_replicas_ack == 1
