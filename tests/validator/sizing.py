"""The settings the validator's own tests change from the shipped defaults, and why.

`make chaos` and the end-to-end tests run the validator at its defaults; these tests drive one
path each (a timeout, a retry, a webhook refusal) and would spend minutes waiting out
production-sized timers. tests/conftest.py prints this table at the end of every pytest run."""

from __future__ import annotations

from services.validator.settings import ValidatorSettings
from shared.settings import variables

#: setting -> (value in these tests, why it is changed)
CHANGED: dict[str, tuple[str, str]] = {
    "TASK_TIMEOUT": ("2", "the tests' silent and slow miners time out in 2 s, not 60"),
    "BLOCK_TIMEOUT": ("0.2", "a test's validator stops within 0.2 s of its last read"),
    "REFERENCE_TIMEOUT": ("5", "no lb listens: the reference is given up on in 5 s"),
    "WEIGHTS_INTERVAL": ("3600", "no weights are set during a test unless it asks"),
    "NETSTATS_INTERVAL": ("0.2", "tests read the published network figures at once"),
    "WEBHOOK_ALLOW_PRIVATE": ("true", "the tests' webhook receivers are on loopback"),
    "WEBHOOK_RETRY_BASE": ("0.05", "a refused webhook is retried within the test"),
    "WEBHOOK_TIMEOUT": ("2", "a receiver that never answers is given up on in 2 s"),
}


def changed_env() -> dict[str, str]:
    """The changed settings as environment variables."""
    return {name: value for name, (value, _) in CHANGED.items()}


def summary_lines() -> list[str]:
    """One line per changed setting: its value here, its shipped default, and why."""
    defaults = variables(ValidatorSettings)
    return [
        f"  {name}={value} (default {defaults[name].default}): {why}"
        for name, (value, why) in CHANGED.items()
    ]
