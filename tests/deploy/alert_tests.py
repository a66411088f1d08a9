"""The unit tests of the alert rules, as promtool runs them: deploy/prometheus/alerts.test.yml
is generated from :data:`CASES` (``python -m tests.deploy.alert_tests >
deploy/prometheus/alerts.test.yml``; tests/deploy/test_alerts.py checks it is current).

promtool compares every annotation of a firing alert, so the expected descriptions and
runbooks are taken from alerts.yml with ``{{ $labels.x }}`` filled in, while each case
states its expected summary itself: that checks the templates that format ``$value``.
Times are minutes from the start of a test; ``time()`` is 0 there.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import Any

import yaml

from tests.deploy.monitoring import load_rules


@dataclass(frozen=True)
class Firing:
    labels: dict[str, str]  # the series' labels the alert keeps (severity is added)
    summary: str


@dataclass(frozen=True)
class Check:
    alert: str
    minute: int
    firing: list[Firing] = field(default_factory=list)  # empty: must not fire


@dataclass(frozen=True)
class Case:
    name: str
    series: dict[str, str]
    checks: list[Check]


GATEWAY = {"job": "gateway", "instance": "gateway:8000"}
V1 = 'job="validator", instance="10.0.0.11:9000"'
V2 = 'job="validator", instance="10.0.0.12:9000"'

CASES = [
    Case(
        "ServiceTargetDown: down 2 minutes fires; one failed scrape or another job does not",
        {
            'up{job="gateway", instance="gateway:8000"}': "1 1 0 0 0 0 0",
            'up{job="lb", instance="lb:8080"}': "1 0 1 1 1 1 1",
            'up{job="node", instance="host:9100"}': "0x6",
        },
        [
            Check("ServiceTargetDown", 1),
            Check("ServiceTargetDown", 3),  # down for 1 minute: pending
            Check(
                "ServiceTargetDown",
                4,
                [Firing(GATEWAY, "gateway at gateway:8000 does not answer /metrics")],
            ),
        ],
    ),
    Case(
        "NoHealthyWhisperxInstance: every instance of one lb unhealthy; the other lb has one",
        {
            'lb_instance_healthy{job="lb", instance="lb-a:8080", exported_instance="http://wx1:9000"}': "1 1 0 0 0 0 0",  # noqa: E501
            'lb_instance_healthy{job="lb", instance="lb-a:8080", exported_instance="http://wx2:9000"}': "1 0 0 0 0 0 0",  # noqa: E501
            'lb_instance_healthy{job="lb", instance="lb-b:8080", exported_instance="http://wx3:9000"}': "1 1 1 0 0 0 0",  # noqa: E501
            'lb_instance_healthy{job="lb", instance="lb-b:8080", exported_instance="http://wx4:9000"}': "1x6",  # noqa: E501
        },
        [
            Check("NoHealthyWhisperxInstance", 3),
            Check(
                "NoHealthyWhisperxInstance",
                5,
                [
                    Firing(
                        {"job": "lb", "instance": "lb-a:8080"},
                        "lb lb-a:8080 has no healthy WhisperX instance",
                    )
                ],
            ),
        ],
    ),
    Case(
        "OldestPendingTaskTooOld: low waits over 5 minutes; in-flight age and high do not count",
        {
            f'gateway_queue_oldest_age_seconds{{job="gateway", instance="g{n}:8000", priority="low", state="waiting"}}': "0 60 360 420 480 540 600"  # noqa: E501
            for n in (1, 2)
        }
        | {
            'gateway_queue_oldest_age_seconds{job="gateway", instance="g1:8000", priority="high", state="waiting"}': "0 100 200 250 280 290 299",  # noqa: E501
            'gateway_queue_oldest_age_seconds{job="gateway", instance="g1:8000", priority="urgent", state="in_flight"}': "900x6",  # noqa: E501
        },
        [
            Check("OldestPendingTaskTooOld", 3),
            Check(
                "OldestPendingTaskTooOld",
                4,
                [
                    Firing(
                        {"priority": "low"},
                        "low tasks have waited over 5 minutes for a validator",
                    )
                ],
            ),
        ],
    ),
    Case(
        "DeadLettersGrowing: one dead letter fires for 15 minutes; reclaims and a restart do not",
        {
            f'validator_reclaims_total{{{V1}, outcome="dead_lettered"}}': "0x10 1x30",
            f'validator_reclaims_total{{{V1}, outcome="reclaimed"}}': "0+1x40",
            f'validator_reclaims_total{{{V2}, outcome="dead_lettered"}}': "5x3 0x37",
        },
        [
            Check("DeadLettersGrowing", 8),
            Check(
                "DeadLettersGrowing",
                12,
                [Firing({}, "tasks dead-lettered in the last 15 minutes: 1")],
            ),
            Check("DeadLettersGrowing", 30),
        ],
    ),
    Case(
        "WeightsNotSet: 2 x WEIGHTS_INTERVAL without a setting fires; the freshest replica counts",
        {
            f"validator_weights_interval_seconds{{{V1}}}": "600x40",
            f"validator_weights_interval_seconds{{{V2}}}": "600x40",
            f"validator_weights_last_set_timestamp_seconds{{{V1}}}": "0x40",
            f"validator_weights_last_set_timestamp_seconds{{{V2}}}": "0x40",
        },
        [
            Check("WeightsNotSet", 20),
            Check("WeightsNotSet", 24),  # over 2 x 600 s since minute 21: pending
            Check("WeightsNotSet", 26, [Firing({}, "weights not set for 26m 0s")]),
        ],
    ),
    Case(
        "WeightsNotSet: weights set every interval by one replica, the other stale: quiet",
        {
            f"validator_weights_interval_seconds{{{V1}}}": "600x40",
            f"validator_weights_last_set_timestamp_seconds{{{V1}}}": "0x9 600x10 1200x10 1800x10",
            f"validator_weights_last_set_timestamp_seconds{{{V2}}}": "0x40",
        },
        [Check("WeightsNotSet", 40)],
    ),
    Case(
        "WebhookBacklogGrowing: +120 in 30 minutes above 100 fires; a flat backlog does not",
        {
            f'validator_webhook_backlog{{{V1}, state="scheduled"}}': "60+4x50",
            f'validator_webhook_backlog{{{V1}, state="due"}}': "0x50",
            f'validator_webhook_backlog{{{V2}, state="scheduled"}}': "60+4x50",
        },
        [
            Check("WebhookBacklogGrowing", 35),  # growing since minute 30: pending
            Check(
                "WebhookBacklogGrowing",
                41,
                [Firing({}, "webhook backlog grew by 120 in 30 minutes")],
            ),
        ],
    ),
    Case(
        "WebhookBacklogGrowing: a large but flat backlog is quiet",
        {f'validator_webhook_backlog{{{V1}, state="scheduled"}}': "150x50"},
        [Check("WebhookBacklogGrowing", 45)],
    ),
    Case(
        "WebhookDeliveriesOverdue: due for over 5 minutes fires; short waits do not",
        {f"validator_webhook_oldest_due_seconds{{{V1}}}": "0+60x20"},
        [
            Check("WebhookDeliveriesOverdue", 8),
            Check(
                "WebhookDeliveriesOverdue",
                11,
                [Firing({}, "a webhook delivery has been due for 11m 0s")],
            ),
        ],
    ),
    Case(
        "WebhookDeliveriesOverdue: deliveries sent as they fall due: quiet",
        {f"validator_webhook_oldest_due_seconds{{{V1}}}": "0 200 0 120 0 200 0 0 0 0 0 0"},
        [Check("WebhookDeliveriesOverdue", 11)],
    ),
    Case(
        "NoMinerAnsweringSuccessfully: asked but no usable answer for 15 minutes fires",
        {
            f'validator_miner_answers_total{{{V1}, uid="1", outcome="usable"}}': "0+5x10 50x30",
            f'validator_miner_answers_total{{{V1}, uid="1", outcome="timeout"}}': "0+5x40",
            f'validator_miner_answers_total{{{V1}, uid="2", outcome="http_error"}}': "0+2x40",
        },
        [
            Check("NoMinerAnsweringSuccessfully", 15),
            Check("NoMinerAnsweringSuccessfully", 21),  # no usable answer in 10 m: pending
            Check(
                "NoMinerAnsweringSuccessfully",
                30,
                [Firing({}, "miners were asked but none gave a usable answer for 15 minutes")],
            ),
        ],
    ),
    Case(
        "NoMinerAnsweringSuccessfully: no traffic at all, or usable answers, is quiet",
        {
            f'validator_miner_answers_total{{{V1}, uid="1", outcome="usable"}}': "7x40",
            f'validator_miner_answers_total{{{V1}, uid="1", outcome="timeout"}}': "3x40",
            f'validator_miner_answers_total{{{V2}, uid="1", outcome="usable"}}': "0x20 0+1x20",
            f'validator_miner_answers_total{{{V2}, uid="1", outcome="timeout"}}': "0x20 0+1x20",
        },
        [Check("NoMinerAnsweringSuccessfully", 18), Check("NoMinerAnsweringSuccessfully", 38)],
    ),
    Case(
        "RedisUnreachable: 2 minutes without Redis fires per service; a blip does not",
        {
            'gateway_redis_up{job="gateway", instance="gateway:8000"}': "1 1 0 0 0 0 0",
            f"validator_redis_up{{{V1}}}": "1 0 1 1 1 1 1",
            f"validator_redis_up{{{V2}}}": "1x6",
        },
        [
            Check("RedisUnreachable", 3),
            Check(
                "RedisUnreachable",
                4,
                [Firing(GATEWAY, "gateway at gateway:8000 cannot reach Redis")],
            ),
        ],
    ),
]

_LABEL = re.compile(r"\{\{ \$labels\.(\w+) \}\}")


def _expected(rule: dict[str, Any], firing: Firing) -> dict[str, Any]:
    annotations = {}
    for name, template in rule["annotations"].items():
        if name == "summary":
            annotations[name] = firing.summary
            continue
        text = _LABEL.sub(lambda m: firing.labels[m.group(1)], template)
        assert "{{" not in text, f"{rule['alert']}.{name}: state its expected text in the case"
        annotations[name] = text
    labels = {**rule.get("labels", {}), **firing.labels}
    return {"exp_labels": labels, "exp_annotations": annotations}


def document() -> dict[str, Any]:
    rules = {rule["alert"]: rule for rule in load_rules()}
    tests = []
    for case in CASES:
        tests.append(
            {
                "name": case.name,
                "interval": "1m",
                "input_series": [{"series": s, "values": v} for s, v in case.series.items()],
                "alert_rule_test": [
                    {
                        "eval_time": f"{check.minute}m",
                        "alertname": check.alert,
                        "exp_alerts": [_expected(rules[check.alert], f) for f in check.firing],
                    }
                    for check in case.checks
                ],
            }
        )
    return {"rule_files": ["alerts.yml"], "evaluation_interval": "1m", "tests": tests}


HEADER = """\
# Unit tests of alerts.yml: `promtool test rules alerts.test.yml` (make test runs it).
# GENERATED by `python -m tests.deploy.alert_tests > deploy/prometheus/alerts.test.yml`
# from the cases in tests/deploy/alert_tests.py; edit those, not this file.
"""


def render() -> str:
    return HEADER + yaml.safe_dump(document(), sort_keys=False, width=100, allow_unicode=True)


if __name__ == "__main__":
    sys.stdout.write(render())
