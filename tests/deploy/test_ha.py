"""The Compose `ha` profile (a replica and three Sentinels) and deploy/ha.env agree with each
other, with the services' settings and with the Sentinel set-up the chaos test runs."""

from __future__ import annotations

import re

from devnet.sentinel import DOWN_AFTER_MS, MASTER_NAME
from shared.settings import load_settings
from tests.deploy.deployfiles import (
    ENV_EXAMPLE,
    HA_ENV,
    load_compose,
    read_env_file,
    settings_class,
)
from tests.deploy.test_settings_sync import OPERATOR_FILLS, compose_service_env

SENTINELS = ("sentinel-1", "sentinel-2", "sentinel-3")


def test_ha_profile_holds_one_replica_and_three_sentinels() -> None:
    services = load_compose()["services"]
    ha = {name for name, s in services.items() if "ha" in (s.get("profiles") or [])}
    assert ha == {"redis-replica", *SENTINELS}
    replica = " ".join(services["redis-replica"]["command"])
    assert "--replicaof redis 6379" in replica and "--appendonly yes" in replica
    assert "--replica-announce-ip redis-replica" in replica
    # The first master announces itself by name too, for when it rejoins as a replica.
    assert "--replica-announce-ip redis" in " ".join(services["redis"]["command"])
    for name in SENTINELS:
        service = services[name]
        script = service["command"][0]
        assert f"sentinel monitor {MASTER_NAME} redis 6379 2" in script  # quorum 2 of 3
        assert f"down-after-milliseconds {MASTER_NAME} {DOWN_AFTER_MS}" in script
        assert "--sentinel" in script and "resolve-hostnames yes" in script
        assert service["environment"] == {"ANNOUNCE": name}
        (volume,) = service["volumes"]
        assert volume == f"{name}-data:/data"  # the Sentinel rewrites its config there
        assert "ports" not in service


def test_ha_env_points_the_services_at_the_profiles_sentinels() -> None:
    values = read_env_file(HA_ENV)
    listed = [a.split(":") for a in values["REDIS_SENTINELS"].split(",")]
    assert [host for host, _ in listed] == list(SENTINELS)
    services = load_compose()["services"]
    for host, port in listed:
        assert f"port {port}" in services[host]["command"][0]
    assert values["REDIS_SENTINEL_MASTER"] == MASTER_NAME
    assert int(values["REDIS_MIN_REPLICAS_ACK"]) == 1


def test_ha_env_appended_to_the_production_env_passes_validation() -> None:
    for service in ("gateway", "validator"):
        env = compose_service_env(service, ENV_EXAMPLE) | OPERATOR_FILLS | read_env_file(HA_ENV)
        settings = load_settings(settings_class(service), env)
        assert [h for h, _ in settings.redis_sentinels] == list(SENTINELS)
        assert settings.redis_min_replicas_ack == 1


def test_ha_env_documents_how_to_use_it() -> None:
    text = HA_ENV.read_text()
    assert re.search(r"cat deploy/ha\.env >> deploy/\.env", text)
    assert "--profile ha" in text
