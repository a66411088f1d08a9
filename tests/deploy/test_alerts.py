"""deploy/prometheus/alerts.yml: promtool's check and unit tests (every alert firing and not
firing), a generated test file that is current, and unit tests that catch a broken rule.

promtool is Debian's ``prometheus`` package; ``make test`` installs it where missing."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.alert_tests import render
from tests.deploy.monitoring import ALERTS, PROMETHEUS_CONFIG, RULE_TESTS, load_rules

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool not found: Debian's prometheus package, which make test installs with "
    "apt-get, could not be installed here",
)
#: The alerts the operators' brief asks for (docs/operations.md#alerts), by rule name.
REQUIRED = {
    "NoHealthyWhisperxInstance",
    "OldestPendingTaskTooOld",
    "DeadLettersGrowing",
    "WeightsNotSet",
    "WebhookBacklogGrowing",
    "NoMinerAnsweringSuccessfully",
    "ServiceTargetDown",
}


def promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


@needs_promtool
def test_rules_pass_promtool_check() -> None:
    result = promtool("check", "rules", ALERTS.name, cwd=ALERTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(load_rules())} rules found" in result.stdout


@needs_promtool
def test_every_alert_fires_and_stays_quiet_as_its_unit_tests_say() -> None:
    result = promtool("test", "rules", RULE_TESTS.name, cwd=RULE_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@needs_promtool
def test_the_scrape_config_passes_promtool_check() -> None:
    result = promtool("check", "config", PROMETHEUS_CONFIG.name, cwd=PROMETHEUS_CONFIG.parent)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_unit_test_file_is_generated_from_the_cases() -> None:
    assert RULE_TESTS.read_text() == render(), (
        "deploy/prometheus/alerts.test.yml is stale: .venv/bin/python -m tests.deploy.alert_tests"
        " > deploy/prometheus/alerts.test.yml"
    )


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    checks = [
        c for t in yaml.safe_load(RULE_TESTS.read_text())["tests"] for c in t["alert_rule_test"]
    ]
    alerts = {rule["alert"] for rule in load_rules()}
    assert alerts >= REQUIRED
    firing = {c["alertname"] for c in checks if c["exp_alerts"]}
    quiet = {c["alertname"] for c in checks if not c["exp_alerts"]}
    assert firing == alerts, alerts - firing
    assert quiet == alerts, alerts - quiet


def test_every_alert_has_a_severity_and_runbook_text() -> None:
    for rule in load_rules():
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook"}, rule["alert"]
        assert re.match(r"1\. ", annotations["runbook"]), rule["alert"]  # numbered steps


def _mutated(tmp_path: Path, expr: str) -> Path:
    """alerts.yml with every rule's expression replaced by ``expr``, and the unit tests."""
    rules = yaml.safe_load(ALERTS.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["expr"] = expr
    (tmp_path / ALERTS.name).write_text(yaml.safe_dump(rules, sort_keys=False))
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    return tmp_path


@needs_promtool
@pytest.mark.parametrize("expr", ["vector(1) > 2", "vector(1)"], ids=["never", "always"])
def test_the_unit_tests_catch_each_rule_that_never_or_always_fires(tmp_path: Path, expr: str):
    folder = _mutated(tmp_path, expr)
    result = promtool("test", "rules", RULE_TESTS.name, cwd=folder)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    # promtool reports every failing check: each alert's own tests caught the broken rule.
    caught = set(re.findall(r"alertname: (\w+),", output))
    assert caught == {rule["alert"] for rule in load_rules()}, output[:2000]
