"""The deploy files and the services' settings classes agree.

Every variable a deploy file sets (Dockerfile ENV, compose.yaml environment, the env
files, Kubernetes ConfigMaps, Secrets and env entries) is one the receiving service
knows; every required setting is set; each deployment's environment passes the
service's own validation (shared.settings.load_settings, including its cross-field
check); and deploy/.env.example is what the generator makes from the settings classes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from marshmallow import fields

from shared.settings import SettingsError, load_settings, setting
from tests.deploy.deployfiles import (
    COMPOSE_KNOBS,
    COMPOSE_REQUIRED,
    COMPOSE_VALUES,
    DEPLOY,
    DEVNET_ENV,
    ENV_EXAMPLE,
    HA_ENV,
    IMAGE_PLUMBING,
    SERVICES,
    applied_manifests,
    compose_env_files,
    compose_environment,
    compose_interpolations,
    container_env,
    dockerfile_stages,
    documented_env_names,
    generate_env_example,
    image_env,
    k8s_objects,
    known,
    load_compose,
    missing_required,
    read_env_file,
    required,
    secret_templates,
    settings_class,
    unknown,
)

#: Stand-ins for the values .env.example leaves for the operator to fill in.
OPERATOR_FILLS = {
    "WEBHOOK_SECRET": "whsec_c2VjcmV0LWZvci10ZXN0cw==",
    "INSTANCE_1_URL": "http://whisperx.example.internal:9000",
    "AWS_ACCESS_KEY_ID": "blob-store-user",
    "AWS_SECRET_ACCESS_KEY": "blob-store-secret",
}


# --------------------------------------------------------------------------- the checks


@dataclasses.dataclass(frozen=True)
class _WithRequired:
    """A settings class with a required variable, for the negative cases."""

    must_have: str = setting(fields.String(), doc="no default: a deployment must set it")
    optional: int = setting(fields.Integer(), 1, "has a default")


def test_unknown_variables_are_detected() -> None:
    assert unknown({"OPTIONAL", "OPTIONL"}, _WithRequired) == {"OPTIONL"}
    assert unknown({"PORT", "HOST"}, settings_class("gateway")) == set()


def test_missing_required_variables_are_detected() -> None:
    assert required(_WithRequired) == {"MUST_HAVE"}
    assert missing_required({"OPTIONAL"}, _WithRequired) == {"MUST_HAVE"}
    assert missing_required({"MUST_HAVE"}, _WithRequired) == set()


def test_settings_classes_have_the_variables_the_deploy_files_rely_on() -> None:
    # If one of these is renamed, the deploy files (and this list) must follow.
    expected = {
        "gateway": {"HOST", "PORT", "REDIS_HOST", "REDIS_URL", "RESULT_TTL", "ENVIRONMENT"},
        "validator": {
            "MINERS_FILE", "LB_URL", "BT_NETUID", "BT_NETWORK", "BT_WALLET_NAME",
            "BT_WALLET_HOTKEY", "BT_WALLET_PATH", "VALIDATOR_PORT", "WEBHOOK_SECRET",
            "MAX_CONCURRENT_TASKS", "TASK_TIMEOUT", "REDIS_HOST", "REDIS_URL",
        },
        "lb": {"PORT", "HEALTH_CHECK_INTERVAL", "HEALTH_CHECK_TIMEOUT", "REQUEST_TIMEOUT"}
        | {f"INSTANCE_{n}_URL" for n in range(1, 11)},
    }  # fmt: skip
    for service, names in expected.items():
        assert names <= set(known(service)), (service, names - set(known(service)))


def loads(service: str, env: dict[str, str]) -> Any:
    """The service's own start-up validation of ``env``; fails the test with its one line."""
    try:
        return load_settings(settings_class(service), env)
    except SettingsError as exc:
        pytest.fail(f"{service}: {exc}")


# --------------------------------------------------------------------------- .env.example


def test_env_example_is_generated_from_the_settings() -> None:
    assert ENV_EXAMPLE.read_text() == generate_env_example(), (
        "deploy/.env.example is stale: .venv/bin/python -m tests.deploy.deployfiles"
        " > deploy/.env.example"
    )


def test_env_example_documents_every_variable_with_its_default() -> None:
    text = ENV_EXAMPLE.read_text()
    every = {name for service in SERVICES for name in known(service)}
    assert documented_env_names(ENV_EXAMPLE) == every | set(COMPOSE_KNOBS)
    for service in SERVICES:
        for name, f in known(service).items():
            if f.default in (None, ()) or name in COMPOSE_VALUES:
                continue
            if name == "PORT":  # differs per service: "default: gateway 8000, lb 8080"
                assert f"{service} {f.default}" in text
            else:
                assert f"\n# {name}=" in text, name


def test_env_example_sets_only_known_variables() -> None:
    values = read_env_file(ENV_EXAMPLE)
    every = {name for service in SERVICES for name in known(service)}
    assert set(values) == set(COMPOSE_VALUES)
    assert not set(values) - every


def test_env_example_blanks_are_exactly_what_the_operator_must_fill() -> None:
    blanks = {name for name, value in read_env_file(ENV_EXAMPLE).items() if value == ""}
    assert blanks == set(COMPOSE_REQUIRED) == set(OPERATOR_FILLS)
    for blank in blanks:
        # Each one, left empty, stops a service at start-up, naming a variable.
        fills = {k: v for k, v in OPERATOR_FILLS.items() if k != blank}
        failures = []
        for service in SERVICES:
            env = compose_service_env(service, ENV_EXAMPLE) | fills
            try:
                load_settings(settings_class(service), env)
            except SettingsError as exc:
                failures.append(str(exc))
        assert failures, f"{blank} left empty and every service still starts"


def test_compose_knobs_are_the_compose_interpolations() -> None:
    assert compose_interpolations() == set(COMPOSE_KNOBS)
    every = {name for service in SERVICES for name in known(service)}
    assert not set(COMPOSE_KNOBS) & every


# --------------------------------------------------------------------------- Compose


def compose_service_env(service: str, env_file: Any) -> dict[str, str]:
    """What the service's container gets: the env_file, then compose.yaml's environment."""
    compose = load_compose()
    assert compose_env_files(service, compose) == [".env"]
    return read_env_file(env_file) | compose_environment(service, compose)


@pytest.mark.parametrize("service", SERVICES)
def test_compose_environment_sets_only_variables_the_service_knows(service: str) -> None:
    assert unknown(compose_environment(service), settings_class(service)) == set()


@pytest.mark.parametrize("env_file", [ENV_EXAMPLE, DEVNET_ENV, HA_ENV], ids=lambda p: p.name)
def test_env_files_set_only_variables_some_service_knows(env_file: Any) -> None:
    every = {name for service in SERVICES for name in known(service)}
    assert set(read_env_file(env_file)) - every == set()


@pytest.mark.parametrize("service", SERVICES)
def test_compose_production_environment_passes_the_service_validation(service: str) -> None:
    env = compose_service_env(service, ENV_EXAMPLE) | OPERATOR_FILLS
    assert missing_required(env, settings_class(service)) == set()
    settings = loads(service, env)
    assert settings.environment == "production"


@pytest.mark.parametrize("service", SERVICES)
def test_compose_devnet_environment_passes_the_service_validation(service: str) -> None:
    env = compose_service_env(service, DEVNET_ENV)
    assert missing_required(env, settings_class(service)) == set()
    loads(service, env)


def test_compose_wires_the_services_together() -> None:
    compose = load_compose()
    validator = loads("validator", compose_service_env("validator", DEVNET_ENV))
    lb = loads("lb", compose_service_env("lb", DEVNET_ENV))
    gateway = loads("gateway", compose_service_env("gateway", ENV_EXAMPLE) | OPERATOR_FILLS)
    assert validator.lb_url == f"http://lb:{lb.port}"
    assert gateway.redis_host == validator.redis_host == "redis"
    assert "redis" in compose["services"]
    assert compose["services"]["gateway"]["ports"] == [f"{gateway.port}:{gateway.port}"]
    assert compose["services"]["lb"]["ports"] == [f"{lb.port}:{lb.port}"]
    assert compose["services"]["validator"]["expose"] == [str(validator.validator_port)]
    # devnet: the lb points at the simulated WhisperX services, the validator at the
    # miners.json and wallets devnet-init writes on the volume it mounts at /devnet.
    whisperx = sorted(name for name in compose["services"] if name.startswith("whisperx-"))
    assert [u.split("//")[1].split(":")[0] for u in lb.instance_urls] == whisperx
    assert validator.miners_file.startswith("/devnet/")
    assert validator.bt_wallet_path.startswith("/devnet/")
    assert "devnet:/devnet:ro" in compose["services"]["validator"]["volumes"]


# --------------------------------------------------------------------------- Dockerfile


@pytest.mark.parametrize("service", SERVICES)
def test_image_env_sets_only_known_variables(service: str) -> None:
    env = set(image_env(dockerfile_stages(), service)) - IMAGE_PLUMBING
    assert unknown(env, settings_class(service)) == set()


# --------------------------------------------------------------------------- Kubernetes


def k8s_containers() -> Iterator[tuple[str, dict[str, Any]]]:
    """(service, container) of each Deployment the kustomization applies."""
    for (kind, _name), obj in k8s_objects(applied_manifests()).items():
        if kind == "Deployment":
            for container in obj["spec"]["template"]["spec"]["containers"]:
                yield container["name"], container


def k8s_env(service: str, *, with_optional: bool = True) -> dict[str, str]:
    objects = k8s_objects([*applied_manifests(), *secret_templates()])
    (container,) = [c for name, c in k8s_containers() if name == service]
    return container_env(container, objects, with_optional=with_optional)


def test_k8s_has_one_deployment_per_service() -> None:
    assert sorted(name for name, _ in k8s_containers()) == sorted(SERVICES)


@pytest.mark.parametrize("service", SERVICES)
def test_k8s_sets_only_known_variables_and_every_required_one(service: str) -> None:
    env = k8s_env(service)
    assert unknown(env, settings_class(service)) == set()
    assert missing_required(env, settings_class(service)) == set()


@pytest.mark.parametrize("with_optional", [True, False], ids=["external-redis", "in-cluster"])
@pytest.mark.parametrize("service", SERVICES)
def test_k8s_environment_passes_the_service_validation(service: str, with_optional: bool) -> None:
    settings = loads(service, k8s_env(service, with_optional=with_optional))
    if service in ("gateway", "validator"):
        expected = "rediss://" if with_optional else "redis://redis:6379/"
        assert settings.redis_dsn.startswith(expected)


def test_every_configmap_key_is_known_by_every_service_that_reads_it() -> None:
    objects = k8s_objects(applied_manifests())
    readers: dict[str, set[str]] = {}
    for service, container in k8s_containers():
        for source in container.get("envFrom") or []:
            if "configMapRef" in source:
                readers.setdefault(source["configMapRef"]["name"], set()).add(service)
    configmaps = {name for kind, name in objects if kind == "ConfigMap"}
    assert set(readers) == configmaps, "a ConfigMap nobody reads, or one that is missing"
    for configmap, services in readers.items():
        keys = set(objects[("ConfigMap", configmap)]["data"])
        for service in services:
            assert unknown(keys, settings_class(service)) == set(), (configmap, service)


def test_k8s_env_reader_detects_an_unknown_key() -> None:
    objects = {("ConfigMap", "c"): {"data": {"PORT": "1", "PROT": "2"}}}
    container = {"envFrom": [{"configMapRef": {"name": "c"}}], "env": [{"name": "X", "value": 1}]}
    env = container_env(container, objects)
    assert unknown(env, settings_class("lb")) == {"PROT", "X"}


def test_nothing_in_deploy_sets_an_unknown_variable_negative_case(tmp_path: Any) -> None:
    # The env-file path of the check, fed a typo, reports it.
    bad = tmp_path / ".env"
    bad.write_text((DEPLOY / "devnet.env").read_text() + "HEALTH_CHECK_INTERVALL=5\n")
    every = {name for service in SERVICES for name in known(service)}
    assert set(read_env_file(bad)) - every == {"HEALTH_CHECK_INTERVALL"}
