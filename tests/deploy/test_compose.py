"""deploy/compose.yaml: the Compose schema, Redis persistence, replicas, health, devnet,
the MinIO bucket's set-up."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.validator.settings import ValidatorSettings
from tests.deploy.deployfiles import (
    COMPOSE,
    ENV_EXAMPLE,
    dockerfile_stages,
    load_compose,
    read_env_file,
)
from tests.deploy.tools import run, tool

APP_SERVICES = ("gateway", "validator", "lb")


def check_compose_schema(path: Path) -> tuple[int, str]:
    """check-jsonschema with the Compose spec schema it vendors (no download)."""
    result = run(tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path))
    return result.returncode, result.stdout + result.stderr


def test_compose_file_matches_the_compose_schema_offline() -> None:
    code, output = check_compose_schema(COMPOSE)
    assert code == 0, output


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("    stop_grace_period: 30s\n", "    stop_grace_period: 30s\n    replica: 3\n"),
        ('    expose:\n      - "9000"\n', "    expose: 9000\n"),
        ("  read_only: true\n", "  read_only: true\n  bogus_key: 1\n"),  # inside an anchor
    ],
    ids=["unknown-key", "wrong-type", "unknown-key-in-merged-anchor"],
)
def test_compose_schema_check_rejects_a_broken_file(tmp_path: Path, old: str, new: str) -> None:
    text = COMPOSE.read_text()
    assert old in text
    broken = tmp_path / "compose.yaml"
    broken.write_text(text.replace(old, new, 1))
    code, _ = check_compose_schema(broken)
    assert code != 0


def test_redis_is_redis7_with_aof_everysec_on_a_named_volume() -> None:
    compose = load_compose()
    redis = compose["services"]["redis"]
    assert redis["image"] == "redis:7"
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command and "--appendfsync everysec" in command
    (volume,) = redis["volumes"]
    name, _, target = volume.partition(":")
    assert target == "/data" and name in compose["volumes"]
    assert "ports" not in redis  # only the Compose network reaches it


def test_validator_runs_two_replicas_and_is_given_time_to_stop() -> None:
    validator = load_compose()["services"]["validator"]
    assert validator["deploy"]["replicas"] == 2
    assert "ports" not in validator  # replicas cannot share a host port
    assert int(validator["stop_grace_period"].removesuffix("s")) > 20  # SHUTDOWN_GRACE


def _has_healthcheck(service: dict[str, Any]) -> bool:
    if "healthcheck" in service:
        return not service["healthcheck"].get("disable", False)
    target = (service.get("build") or {}).get("target")
    stage = dockerfile_stages().get(target) if target else None
    return bool(stage and stage.all("HEALTHCHECK") and stage.all("HEALTHCHECK") != ["NONE"])


def test_every_long_running_service_has_a_healthcheck_and_restart_policy() -> None:
    services = load_compose()["services"]
    for name, service in services.items():
        if name in ("devnet-init", "minio-init"):  # one-shots
            assert service["restart"] == "no"
            continue
        assert service["restart"] == "unless-stopped", name
        assert _has_healthcheck(service), name


def test_app_services_read_settings_from_the_env_file_and_run_hardened() -> None:
    services = load_compose()["services"]
    for name in APP_SERVICES:
        service = services[name]
        assert service["env_file"] == [{"path": ".env", "required": True}], name
        assert service["build"] == {
            "context": "..",
            "dockerfile": "deploy/Dockerfile",
            "target": name,
        }
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"], name
        assert "profiles" not in service, name


MONITORING = {"prometheus", "grafana"}


def test_devnet_profile_holds_exactly_the_simulators_and_the_monitoring() -> None:
    services = load_compose()["services"]
    devnet = {name for name, s in services.items() if "devnet" in (s.get("profiles") or [])}
    simulators = {name for name in services if name.startswith(("miner-", "whisperx-"))}
    assert devnet == simulators | {"devnet-init"} | MONITORING
    assert all(services[n]["build"]["target"] == "devnet" for n in devnet - MONITORING)
    # Prometheus and Grafana: pinned upstream images, also alone in the monitoring profile.
    for name in MONITORING:
        assert services[name]["profiles"] == ["devnet", "monitoring"], name
        tag = services[name]["image"].partition(":")[2]
        assert tag and tag != "latest" and "build" not in services[name], name


def _option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_devnet_init_lists_each_miner_at_its_port_and_wallet() -> None:
    services = load_compose()["services"]
    init = services["devnet-init"]["command"]
    listed = dict(
        arg.removeprefix("--miner=").split("=", 1) for arg in init if arg.startswith("--miner=")
    )
    miners = {n.removeprefix("miner-"): s for n, s in services.items() if n.startswith("miner-")}
    assert set(listed) == set(miners)
    for profile, service in miners.items():
        command = service["command"]
        port = _option(command, "--port")
        assert listed[profile] == f"http://miner-{profile}:{port}"
        assert _option(command, "--profile") == profile
        assert _option(command, "--wallet-name") == f"devnet-miner-{profile}"
        assert _option(command, "--wallet-path") == "/devnet/wallets"
        assert _option(command, "--host") == "0.0.0.0"  # reachable from other containers
        assert f"127.0.0.1', {port})" in " ".join(service["healthcheck"]["test"])
        assert service["depends_on"]["devnet-init"]["condition"] == (
            "service_completed_successfully"
        )


def test_devnet_whisperx_health_checks_probe_their_port() -> None:
    services = load_compose()["services"]
    for name, service in services.items():
        if name.startswith("whisperx-"):
            port = _option(service["command"], "--port")
            assert f"127.0.0.1:{port}/health" in " ".join(service["healthcheck"]["test"]), name


def test_validator_waits_for_devnet_init_only_when_the_profile_is_on() -> None:
    depends = load_compose()["services"]["validator"]["depends_on"]
    assert depends["devnet-init"] == {
        "condition": "service_completed_successfully",
        "required": False,
    }
    assert depends["redis"] == {"condition": "service_healthy"}


def test_compose_yaml_has_no_literal_secrets() -> None:
    text = COMPOSE.read_text()
    # A value that is a reference ($NAME, "$NAME": MinIO's root password is the
    # AWS_SECRET_ACCESS_KEY of .env) is no literal.
    assert not re.search(r"(SECRET|PASSWORD|TOKEN)\s*[:=]\s*(?!\"?\$)\S", text, flags=re.I)
    assert yaml.safe_load(text)  # parses


def test_devnet_commands_use_only_options_the_simulators_accept() -> None:
    services = load_compose()["services"]
    by_module: dict[str, set[str]] = {}
    for name, service in services.items():
        command = service.get("command") or []
        if name.startswith(("miner-", "whisperx-")):
            assert command[:2] == ["python", "-m"], name
            options = {arg.split("=")[0] for arg in command if arg.startswith("--")}
            by_module.setdefault(command[2], set()).update(options)
    assert set(by_module) == {"devnet.miner", "devnet.whisperx"}
    for module, options in by_module.items():
        result = run(sys.executable, "-m", module, "--help")
        assert result.returncode == 0, result.stderr
        accepted = set(re.findall(r"--[a-z][a-z-]*", result.stdout))
        assert options <= accepted, (module, options - accepted)


def test_minio_init_creates_the_bucket_and_one_lifecycle_rule_on_every_up() -> None:
    """The bucket of .env.example's BLOB_STORE, and an 8-day expiry that outlasts the
    default RESULT_TTL; imported (replacing the lifecycle), so a second `up` adds no
    second copy of the rule, as `mc ilm rule add` would."""
    script = load_compose()["services"]["minio-init"]["entrypoint"][2].replace("$$", "$")
    assert run("sh", "-n", "-c", script).returncode == 0
    first = script.split(" && ")[0]  # bucket=$(...): the bucket named by BLOB_STORE
    env = {"BLOB_STORE": read_env_file(ENV_EXAMPLE)["BLOB_STORE"], "PATH": "/usr/bin:/bin"}
    found = subprocess.run(
        ["sh", "-c", f'{first} && echo "$bucket"'], env=env, capture_output=True, text=True
    )
    assert env["BLOB_STORE"].startswith(f"s3://{found.stdout.strip()}/")
    assert 'mc mb --ignore-existing "store/$bucket"' in script
    assert "ilm rule add" not in script
    imported = re.search(r"echo '(.*)' \| mc ilm rule import \"store/\$bucket\"$", script)
    assert imported is not None
    (rule,) = json.loads(imported.group(1))["Rules"]
    assert rule["Status"] == "Enabled" and rule["Filter"] == {"Prefix": ""}
    assert rule["Expiration"]["Days"] * 86400 > ValidatorSettings().result_ttl
