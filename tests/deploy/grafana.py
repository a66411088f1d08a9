"""deploy/grafana/dashboard.json, generated: ``python -m tests.deploy.grafana >
deploy/grafana/dashboard.json`` (tests/deploy/test_monitoring_files.py checks it is current).

The same views as the gateway's /dashboard, over Prometheus, for the three services. The
data source is the dashboard variable ``datasource`` (any Prometheus), so the file imports
as is into any Grafana and Compose's devnet profile provisions it. Figures every replica
reports alike (queue gauges on every gateway, shared gauges on every validator) are taken
with max(); counters of different replicas are summed. The lb's instance label arrives as
``exported_instance`` (Prometheus keeps ``instance`` for the scrape target).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

DS = {"type": "prometheus", "uid": "${datasource}"}
RATE = "$__rate_interval"
WIDTH = 24


def target(expr: str, legend: str = "", ref: str = "A", **extra: Any) -> dict[str, Any]:
    return {"datasource": DS, "expr": expr, "legendFormat": legend, "refId": ref, **extra}


def timeseries(title: str, targets: list[dict[str, Any]], unit: str = "short", **opts: Any):
    return {
        "type": "timeseries",
        "title": title,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit, "min": 0}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        **opts,
    }


def stat(title: str, *exprs: str, unit: str = "short", thresholds: list | None = None):
    """One figure per expression (legend: the text after ``#`` in it, if any)."""
    steps = thresholds or [{"color": "green", "value": None}]
    targets = []
    for i, text in enumerate(exprs):
        expr, _, legend = text.partition(" # ")
        targets.append(target(expr, legend, chr(ord("A") + i), instant=True))
    return {
        "type": "stat",
        "title": title,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {
            "defaults": {"unit": unit, "thresholds": {"mode": "absolute", "steps": steps}},
            "overrides": [],
        },
        "options": {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "background"},
    }


def red_below(limit: float) -> list[dict[str, Any]]:
    return [{"color": "red", "value": None}, {"color": "green", "value": limit}]


def red_above(limit: float) -> list[dict[str, Any]]:
    return [{"color": "green", "value": None}, {"color": "red", "value": limit}]


def table(title: str, targets: list[dict[str, Any]], names: dict[str, str]) -> dict[str, Any]:
    """One row per label set, one column per query (instant queries merged)."""
    order = {name: i for i, name in enumerate(names.values())}
    return {
        "type": "table",
        "title": title,
        "datasource": DS,
        "targets": [{**t, "format": "table", "instant": True} for t in targets],
        "transformations": [
            {"id": "merge", "options": {}},
            {
                "id": "organize",
                "options": {
                    "excludeByName": {"Time": True},
                    "renameByName": names,
                    "indexByName": order,
                },
            },
        ],
        "fieldConfig": {"defaults": {}, "overrides": []},
        "options": {"showHeader": True},
    }


def row(title: str) -> dict[str, Any]:
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def quantile(q: float, family: str, by: str, selector: str = "") -> str:
    return f"histogram_quantile({q}, sum by (le, {by}) (rate({family}_bucket{selector}[{RATE}])))"


SECTIONS: list[tuple[str, list[tuple[int, int, dict[str, Any]]]]] = [
    (
        "Overview",
        [
            (4, 4, stat("Targets up", 'sum by (job) (up{job=~"gateway|validator|lb"}) # {{job}}', thresholds=red_below(1))),  # noqa: E501
            (4, 4, stat("Redis reachable", "min(gateway_redis_up) # gateway", "min(validator_redis_up) # validator", thresholds=red_below(1))),  # noqa: E501
            (4, 4, stat("Tasks queued", "max(sum by (instance) (gateway_queue_depth))")),
            (4, 4, stat("Healthy WhisperX", "sum(lb_instance_healthy)", thresholds=red_below(1))),
            (4, 4, stat("Dead letters", "max(validator_dead_letters)", thresholds=red_above(1))),
            (4, 4, stat("Since weights were set", "time() - max(validator_weights_last_set_timestamp_seconds)", unit="s", thresholds=red_above(2400))),  # noqa: E501
        ],
    ),
    (
        "Queues",
        [
            (12, 8, timeseries("Queue depth by priority", [target("max by (priority, state) (gateway_queue_depth)", "{{priority}} {{state}}")])),  # noqa: E501
            (12, 8, timeseries("Oldest entry age by priority", [target('max by (priority) (gateway_queue_oldest_age_seconds{state="waiting"})', "{{priority}} waiting"), target('max by (priority) (gateway_queue_oldest_age_seconds{state="in_flight"})', "{{priority}} in flight", "B")], "s")),  # noqa: E501
        ],
    ),
    (
        "Tasks",
        [
            (8, 8, timeseries("Tasks finished per minute, by status", [target(f"sum by (outcome) (rate(validator_tasks_total[{RATE}])) * 60", "{{outcome}}")])),  # noqa: E501
            (8, 8, timeseries("End-to-end latency (submitted to completed)", [target(quantile(0.5, "validator_task_duration_seconds", "task_type", '{outcome="completed"}'), "p50 {{task_type}}"), target(quantile(0.95, "validator_task_duration_seconds", "task_type", '{outcome="completed"}'), "p95 {{task_type}}", "B")], "s")),  # noqa: E501
            (8, 8, timeseries("Attempts per task (mean)", [target(f"sum by (task_type) (rate(validator_task_attempts_sum[{RATE}])) / sum by (task_type) (rate(validator_task_attempts_count[{RATE}]))", "{{task_type}}")])),  # noqa: E501
            (8, 8, timeseries("Submissions per minute, by type", [target(f"sum by (task_type) (rate(gateway_submissions_total[{RATE}])) * 60", "{{task_type}}")])),  # noqa: E501
            (8, 8, timeseries("Gateway answers per second, by status", [target(f"sum by (status) (rate(gateway_http_requests_total[{RATE}]))", "{{status}}")], "reqps")),  # noqa: E501
            (8, 8, timeseries("Gateway latency p95, by route", [target(quantile(0.95, "gateway_http_request_duration_seconds", "route"), "{{route}}")], "s")),  # noqa: E501
        ],
    ),
    (
        "Miners",
        [
            (24, 9, table("Miners", [target("max by (uid, hotkey) (validator_miner_info)", ref="A"), target("max by (uid) (validator_miner_score)", ref="B"), target('sum by (uid) (increase(validator_miner_answers_total{outcome=~"usable|unusable"}[1h]))', ref="C"), target('sum by (uid) (increase(validator_miner_answers_total{outcome!~"usable|unusable"}[1h]))', ref="D"), target("histogram_quantile(0.5, sum by (le, uid) (rate(validator_miner_request_seconds_bucket[1h])))", ref="E"), target("sum by (uid) (validator_miner_in_flight)", ref="F")], {"uid": "uid", "hotkey": "hotkey", "Value #B": "score", "Value #C": "answers (1 h)", "Value #D": "failures (1 h)", "Value #E": "latency p50 (s)", "Value #F": "in flight", "Value #A": "registered"})),  # noqa: E501
            (8, 8, timeseries("Miner answers per second, by outcome", [target(f"sum by (outcome) (rate(validator_miner_answers_total[{RATE}]))", "{{outcome}}")])),  # noqa: E501
            (8, 8, timeseries("Miner latency p50, by uid", [target(quantile(0.5, "validator_miner_request_seconds", "uid"), "uid {{uid}}")], "s")),  # noqa: E501
            (8, 8, timeseries("Running score, by uid", [target("max by (uid) (validator_miner_score)", "uid {{uid}}")])),  # noqa: E501
        ],
    ),
    (
        "WhisperX pool (lb)",
        [
            (8, 8, timeseries("Healthy instances", [target("max by (exported_instance) (lb_instance_healthy)", "{{exported_instance}}")])),  # noqa: E501
            (8, 8, timeseries("Jobs per instance", [target("max by (exported_instance) (lb_instance_active_jobs)", "active {{exported_instance}}"), target("max by (exported_instance) (lb_in_flight_requests)", "in flight {{exported_instance}}", "B")])),  # noqa: E501
            (8, 8, timeseries("lb requests per second, by outcome", [target(f"sum by (outcome) (rate(lb_requests_total[{RATE}]))", "{{outcome}}")], "reqps")),  # noqa: E501
        ],
    ),
    (
        "Webhooks, dead letters, weights",
        [
            (6, 8, timeseries("Webhook backlog", [target("max by (state) (validator_webhook_backlog)", "{{state}}")])),  # noqa: E501
            (6, 8, timeseries("Webhook attempts per minute, by outcome", [target(f"sum by (outcome) (rate(validator_webhook_attempts_total[{RATE}])) * 60", "{{outcome}}")])),  # noqa: E501
            (6, 8, timeseries("Dead letters and reclaims", [target("max(validator_dead_letters)", "dead letters (stream)"), target(f"sum by (outcome) (increase(validator_reclaims_total[{RATE}]))", "{{outcome}}", "B")])),  # noqa: E501
            (6, 8, timeseries("Weight settings, by outcome", [target("sum by (outcome) (increase(validator_weight_settings_total[1h]))", "{{outcome}}")])),  # noqa: E501
        ],
    ),
]  # fmt: skip


def _laid_out() -> Iterator[dict[str, Any]]:
    """Rows and panels with ids and grid positions, left to right, top to bottom."""
    y, ident = 0, 1
    for title, items in SECTIONS:
        yield {**row(title), "id": ident, "gridPos": {"h": 1, "w": WIDTH, "x": 0, "y": y}}
        ident, y, x, height = ident + 1, y + 1, 0, 0
        for w, h, panel in items:
            if x + w > WIDTH:
                x, y, height = 0, y + height, 0
            yield {**panel, "id": ident, "gridPos": {"h": h, "w": w, "x": x, "y": y}}
            ident, x, height = ident + 1, x + w, max(height, h)
        y += height


def dashboard() -> dict[str, Any]:
    return {
        "uid": "audio-subnet",
        "title": "Audio subnet: gateway, validator, lb",
        "description": "Queues, tasks, miners, the WhisperX pool, webhooks, dead letters and"
        " weights (docs/operations.md).",
        "tags": ["audio-subnet", "bittensor"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "time": {"from": "now-3h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                    "hide": 0,
                    "refresh": 1,
                    "options": [],
                }
            ]
        },
        "annotations": {"list": []},
        "links": [],
        "panels": list(_laid_out()),
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
