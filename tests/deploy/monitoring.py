"""The monitoring files in deploy/ (Grafana dashboard, Prometheus rules and scrape config)
and what their PromQL names: each metric and the labels it is used with.

Expressions are parsed with promql-parser (the Rust PromQL parser), not matched with
regular expressions. A selector's matchers name labels of its metric; so do the labels of
an enclosing ``by (...)`` and of ``on (...)``, and ``group_left (...)`` names labels of the
right-hand side (``group_right``, of the left). ``job`` and ``instance`` come from
Prometheus' targets, ``up`` from Prometheus itself: neither is asked of the services, and
``exported_instance`` is the service's own ``instance`` label, renamed by Prometheus.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import promql_parser as promql
import yaml
from prometheus_client.parser import text_string_to_metric_families

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboard.json"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
RULE_TESTS = DEPLOY / "prometheus" / "alerts.test.yml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"

TARGET_LABELS = frozenset({"job", "instance"})
FROM_PROMETHEUS = frozenset({"up"})
#: Grafana's built-in variables, as a typical dashboard resolves them.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "15m"}

References = dict[str, set[str]]


def _merge(into: References, name: str, labels: Iterable[str]) -> None:
    into.setdefault(name, set()).update(labels)


def _walk(node: Any, labels: frozenset[str], out: References) -> None:
    """Record every selector under ``node``, with ``labels`` from enclosing expressions."""
    kind = type(node).__name__
    if kind == "VectorSelector":
        own = {m.name for m in node.matchers.matchers if m.name != "__name__"}
        if node.name:
            _merge(out, node.name, own | labels)
    elif kind == "MatrixSelector":
        _walk(node.vector_selector, labels, out)
    elif kind == "AggregateExpr":
        by = node.modifier
        inner = labels
        if by is not None and str(by.type).endswith("By"):
            inner = labels | frozenset(by.labels)
        _walk(node.expr, inner, out)
        if node.param is not None:
            _walk(node.param, labels, out)
    elif kind == "BinaryExpr":
        left = right = labels
        modifier = node.modifier
        matching = modifier.matching if modifier is not None else None
        if matching is not None and str(matching.type).endswith("Include"):
            left = right = labels | frozenset(matching.labels)
        if modifier is not None and modifier.group_labels:
            if str(modifier.card).endswith("ManyToOne"):  # group_left: the right side's
                right = right | frozenset(modifier.group_labels)
            elif str(modifier.card).endswith("OneToMany"):
                left = left | frozenset(modifier.group_labels)
        _walk(node.lhs, left, out)
        _walk(node.rhs, right, out)
    elif kind == "Call":
        for arg in node.args:
            _walk(arg, labels, out)
    elif kind in ("ParenExpr", "UnaryExpr", "SubqueryExpr"):
        _walk(node.expr, labels, out)


def references(expr: str) -> References:
    """Metric name -> label names the expression uses it with (target labels left out)."""
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    out: References = {}
    _walk(promql.parse(expr), frozenset(), out)
    return {
        name: {_exporter_label(label) for label in labels if label not in TARGET_LABELS}
        for name, labels in out.items()
        if name not in FROM_PROMETHEUS
    }


def _exporter_label(label: str) -> str:
    """The label as the service exports it: Prometheus renames an exported ``instance``
    (the lb's WhisperX URL) to ``exported_instance`` because the target's wins."""
    return label.removeprefix("exported_")


def _merged(expressions: Iterable[str]) -> References:
    out: References = {}
    for expr in expressions:
        for name, labels in references(expr).items():
            _merge(out, name, labels)
    return out


def load_dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, those inside collapsed rows too."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def dashboard_expressions(dashboard: dict[str, Any] | None = None) -> list[str]:
    dashboard = dashboard or load_dashboard()
    return [t["expr"] for p in panels(dashboard) for t in p.get("targets", []) if t.get("expr")]


def load_rules() -> list[dict[str, Any]]:
    """Every rule of deploy/prometheus/alerts.yml."""
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard_references() -> References:
    return _merged(dashboard_expressions())


def rule_references() -> References:
    return _merged(rule["expr"] for rule in load_rules())


def all_references() -> References:
    """The dashboard's and the rules' references, each metric with the labels either uses
    (a dict merge would keep only the rules' labels of a metric both name)."""
    return _merged([*dashboard_expressions(), *(rule["expr"] for rule in load_rules())])


def scraped_labels(texts: Iterable[str]) -> References:
    """Sample name -> label names seen, over Prometheus text expositions."""
    out: References = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                _merge(out, sample.name, sample.labels)
    return out
