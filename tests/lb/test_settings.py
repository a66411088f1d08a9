"""LB settings and start-up: seed defaults, instance numbering, and the one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from services.lb.settings import LbSettings
from shared.settings import SettingsError, load_settings
from tests.lb.conftest import lb_environment


def test_defaults_are_the_seed_values():
    s = load_settings(LbSettings, {"INSTANCE_1_URL": "http://a:9000"})
    assert (s.port, s.health_check_interval, s.request_timeout) == (8080, 30, 3600)
    assert (s.health_check_timeout, s.unhealthy_threshold) == (5, 3)


def test_gaps_in_the_numbering_are_allowed_and_order_is_kept():
    s = load_settings(
        LbSettings,
        {"INSTANCE_7_URL": "https://g.example/", "INSTANCE_2_URL": "http://b:1", "PORT": "9"},
    )
    assert s.instance_urls == ["http://b:1", "https://g.example"]


def test_no_instance_is_an_error():
    with pytest.raises(SettingsError, match="At least one instance endpoint must be configured"):
        load_settings(LbSettings, {"PORT": "8080"})


@pytest.mark.parametrize("value", ["not-a-url", "ftp://x:1", "http://", "http://a b"])
def test_malformed_url_is_named(value):
    with pytest.raises(SettingsError, match=r"^INSTANCE_4_URL: "):
        load_settings(LbSettings, {"INSTANCE_1_URL": "http://a:1", "INSTANCE_4_URL": value})


def test_the_same_instance_twice_is_an_error():
    env = {"INSTANCE_1_URL": "http://a:1/", "INSTANCE_3_URL": "http://a:1"}
    with pytest.raises(SettingsError, match="INSTANCE_3_URL: same URL as INSTANCE_1_URL"):
        load_settings(LbSettings, env)


def _run_lb(tmp_path, **env) -> subprocess.CompletedProcess[str]:
    # In an empty directory, so that no .env file adds instances.
    return subprocess.run(
        [sys.executable, "-m", "services.lb"],
        cwd=tmp_path,
        env=lb_environment(**env),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_process_without_instances_exits_non_zero_with_the_message(tmp_path):
    result = _run_lb(tmp_path)
    assert result.returncode != 0
    assert "At least one instance endpoint must be configured" in result.stderr


def test_process_names_a_malformed_url_in_one_line(tmp_path):
    result = _run_lb(tmp_path, INSTANCE_1_URL="http://a:1", INSTANCE_2_URL="localhost:9000")
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1
    assert "INSTANCE_2_URL" in result.stderr and "localhost:9000" in result.stderr


def test_dotenv_file_configures_instances(tmp_path, monkeypatch):
    (tmp_path / ".env").write_text("INSTANCE_3_URL=http://from-dotenv:9000\n")
    monkeypatch.chdir(tmp_path)
    for n in range(1, 11):
        monkeypatch.delenv(f"INSTANCE_{n}_URL", raising=False)
    assert load_settings(LbSettings).instance_urls == ["http://from-dotenv:9000"]
