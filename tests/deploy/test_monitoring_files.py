"""deploy/grafana and deploy/prometheus: the dashboard parses, is current and importable
as is (its data source a variable), references only metrics the services declare, and
Compose mounts and wires Prometheus and Grafana as those files expect.

tests/e2e/test_operations.py scrapes a running stack for the same references."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry, generate_latest

from services.gateway.metrics import GatewayMetrics, QueueGauges
from services.lb.instances import InstancePool
from services.lb.metrics import LbMetrics
from services.validator.metrics import Metrics
from services.validator.settings import ValidatorSettings
from shared.queues import QueueFigures
from shared.tasks import PRIORITY_ORDER
from tests.deploy.deployfiles import DEPLOY, load_compose
from tests.deploy.grafana import render
from tests.deploy.monitoring import (
    DASHBOARD,
    PROMETHEUS_CONFIG,
    References,
    all_references,
    dashboard_expressions,
    dashboard_references,
    load_dashboard,
    load_rules,
    panels,
    references,
    rule_references,
    scraped_labels,
)

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
}


def _registries() -> list[CollectorRegistry]:
    gateway = GatewayMetrics()
    # The collector's first read creates the queue gauges' children.
    idle = [QueueFigures(p, 0, 0, None, None) for p in PRIORITY_ORDER]
    QueueGauges(gateway.registry).show(idle, 0.0)
    return [
        gateway.registry,
        Metrics().registry,
        LbMetrics(InstancePool(["http://whisperx:9000"], 3)).registry,
    ]


def declared() -> tuple[set[str], References]:
    """Every sample name the three services can export, and the labels of those they
    export already (children created up front)."""
    names = set()
    for registry in _registries():
        for family in registry.collect():
            names.update(family.name + s for s in _SUFFIXES.get(family.type, ("",)))
    exposed = scraped_labels(generate_latest(r).decode() for r in _registries())
    return names, exposed


def test_dashboard_is_generated_and_parses() -> None:
    assert DASHBOARD.read_text() == render(), (
        "deploy/grafana/dashboard.json is stale: .venv/bin/python -m tests.deploy.grafana"
        " > deploy/grafana/dashboard.json"
    )
    dashboard = load_dashboard()
    assert dashboard["uid"] and dashboard["title"]
    assert len(dashboard_expressions(dashboard)) >= 30


def test_dashboard_data_source_is_a_variable_so_it_imports_as_is() -> None:
    dashboard = load_dashboard()
    (variable,) = [v for v in dashboard["templating"]["list"] if v["type"] == "datasource"]
    assert (variable["name"], variable["query"]) == ("datasource", "prometheus")
    assert "__inputs" not in dashboard  # nothing to map at import
    for panel in panels(dashboard):
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))


def test_dashboard_shows_the_pages_views_for_the_three_services() -> None:
    titles = {p["title"] for p in panels(load_dashboard())}
    for view in (
        "Queue depth by priority",
        "Oldest entry age by priority",
        "Tasks finished per minute, by status",
        "End-to-end latency (submitted to completed)",
        "Miners",
        "Healthy instances",
        "Webhook backlog",
        "Dead letters and reclaims",
        "Since weights were set",
    ):
        assert view in titles, view
    names = set(dashboard_references())
    for prefix in ("gateway_", "validator_", "lb_"):
        assert any(n.startswith(prefix) for n in names), prefix


def _check(refs: References) -> None:
    names, exposed = declared()
    unknown = sorted(set(refs) - names)
    assert not unknown, f"not a metric any service declares: {unknown}"
    for name, labels in refs.items():
        if name in exposed:  # its children exist at start: its labels are known
            assert labels <= exposed[name], (name, labels - exposed[name])


def test_dashboard_references_only_metrics_the_services_declare() -> None:
    _check(dashboard_references())


def test_rules_reference_only_metrics_the_services_declare() -> None:
    _check(rule_references())


def test_the_reference_check_catches_a_typo_and_a_wrong_label() -> None:
    names, exposed = declared()
    assert "gateway_queue_dept" not in names
    bad = references('max by (prio) (gateway_queue_depth{state="waiting"})')
    assert bad == {"gateway_queue_depth": {"prio", "state"}}
    assert not bad["gateway_queue_depth"] <= exposed["gateway_queue_depth"]
    lb = references("max by (exported_instance) (lb_instance_healthy)")
    assert lb == {"lb_instance_healthy": {"instance"}}  # the lb exports it as instance


def test_the_scraped_check_gets_each_metric_with_the_labels_of_both_files() -> None:
    # tests/e2e/test_operations.py checks these against a running stack.
    dashboard, rules, both = dashboard_references(), rule_references(), all_references()
    assert set(both) == set(dashboard) | set(rules)
    for name, labels in both.items():
        assert labels == dashboard.get(name, set()) | rules.get(name, set()), name
    assert both["validator_miner_answers_total"] == {"uid", "outcome"}  # uid: the dashboard's


def test_docs_operations_names_every_metric_and_alert() -> None:
    text = (DEPLOY.parent / "docs" / "operations.md").read_text()
    families = {
        family.name + ("_total" if family.type == "counter" else "")
        for registry in _registries()
        for family in registry.collect()
    }
    undocumented = sorted(name for name in families if f"`{name}`" not in text)
    assert not undocumented, f"docs/operations.md#metrics lacks {undocumented}"
    for rule in load_rules():
        assert f"### {rule['alert']}\n" in text, rule["alert"]  # its runbook section


def _scrape_config() -> dict[str, Any]:
    return yaml.safe_load(PROMETHEUS_CONFIG.read_text())


def test_prometheus_scrapes_every_service_at_its_compose_name_and_port() -> None:
    services = load_compose()["services"]
    ports = {
        "gateway": services["gateway"]["environment"]["PORT"],
        "validator": services["validator"]["environment"]["VALIDATOR_PORT"],
        "lb": services["lb"]["environment"]["PORT"],
    }
    jobs = {job["job_name"]: job for job in _scrape_config()["scrape_configs"]}
    assert set(jobs) == set(ports)
    for name, job in jobs.items():
        (sd,) = job["dns_sd_configs"]
        assert (sd["names"], str(sd["port"]), sd["type"]) == ([name], ports[name], "A")
    assert ValidatorSettings.__dataclass_fields__["validator_port"].default == 9000
    # The target-down alert watches exactly these jobs.
    (rule,) = [r for r in load_rules() if r["alert"] == "ServiceTargetDown"]
    assert set(rule["expr"].split('"')[1].split("|")) == set(jobs)


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path (relative to deploy/) of a service's bind mounts."""
    out = {}
    for volume in service["volumes"]:
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            out[target] = source
    return out


def test_compose_mounts_the_monitoring_files_where_their_configs_look() -> None:
    services = load_compose()["services"]
    prometheus, grafana = services["prometheus"], services["grafana"]
    mounts = _mounts(prometheus)
    assert mounts == {"/etc/prometheus": "./prometheus"}
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    assert _scrape_config()["rule_files"] == ["alerts.yml"]  # beside it, in the same folder
    mounts = _mounts(grafana)
    for source in mounts.values():
        assert (DEPLOY / source).exists(), source
    assert mounts["/etc/grafana/provisioning"] == "./grafana/provisioning"
    dashboard_file = next(t for t, s in mounts.items() if s == "./grafana/dashboard.json")
    provisioning = DEPLOY / "grafana" / "provisioning"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "audio-subnet.yml").read_text())[
        "providers"
    ]
    assert str(Path(dashboard_file).parent) == provider["options"]["path"]
    assert grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"] == dashboard_file
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["type"] == "prometheus" and source["isDefault"] is True
    assert source["url"] == "http://prometheus:9090"
    assert "9090:9090" in prometheus["ports"] and "3000:3000" in grafana["ports"]
