"""Readers for the deploy files and the generator of deploy/.env.example.

The tests in this package compare what deploy/ sets (Dockerfile ENV, compose.yaml,
.env files, Kubernetes ConfigMaps, Secrets and env entries) with what the services'
settings classes know. Regenerate the env template after a settings change with::

    .venv/bin/python -m tests.deploy.deployfiles > deploy/.env.example
"""

from __future__ import annotations

import dataclasses
import re
import shlex
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from shared.settings import variables

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"
DEVNET_ENV = DEPLOY / "devnet.env"
HA_ENV = DEPLOY / "ha.env"
K8S = DEPLOY / "k8s"

#: The three services: name -> "module:class" of its settings.
SERVICES: dict[str, str] = {
    "gateway": "services.gateway.settings:GatewaySettings",
    "validator": "services.validator.settings:ValidatorSettings",
    "lb": "services.lb.settings:LbSettings",
}

#: Values the Compose deployment needs different from the defaults, uncommented in
#: .env.example. An empty value marks what the operator MUST fill in (COMPOSE_REQUIRED).
COMPOSE_VALUES: dict[str, str] = {
    "ENVIRONMENT": "production",
    "API_KEYS_REQUIRED": "true",  # the gateway faces the internet: no anonymous tasks
    "RATE_LIMITS": "submit=60/min,read=600/min,meta=120/min",
    "BT_WALLET_PATH": "/wallets",  # where compose.yaml mounts WALLETS_DIR
    "WEBHOOK_SECRET": "",
    "INSTANCE_1_URL": "",
    # The blob store: the MinIO service of compose.yaml (these keys are its root user).
    "BLOB_STORE": "s3://audio-blobs/blobs",
    "S3_ENDPOINT_URL": "http://minio:9000",
    "AWS_ACCESS_KEY_ID": "",
    "AWS_SECRET_ACCESS_KEY": "",
}

#: Why each empty value above must be filled in.
COMPOSE_REQUIRED: dict[str, str] = {
    "WEBHOOK_SECRET": "the validator requires it with ENVIRONMENT=production",
    "INSTANCE_1_URL": "the lb needs at least one WhisperX instance",
    "AWS_ACCESS_KEY_ID": "the blob store's access key (compose.yaml: also MinIO's root user)",
    "AWS_SECRET_ACCESS_KEY": "the blob store's secret key (MinIO: at least 8 characters)",
}

#: Variables only Compose reads (interpolated in compose.yaml), not the services.
COMPOSE_KNOBS: dict[str, tuple[str, str]] = {
    "WALLETS_DIR": (
        "~/.bittensor/wallets",
        "host directory mounted read-only at /wallets in the validators (BT_WALLET_PATH)",
    ),
}

#: Image plumbing the Dockerfile sets that is not a service setting.
IMAGE_PLUMBING = frozenset({"PATH", "HOME", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"})


def settings_class(service: str) -> type:
    module_name, _, class_name = SERVICES[service].partition(":")
    __import__(module_name)
    return getattr(sys.modules[module_name], class_name)


def known(service: str) -> dict[str, dataclasses.Field]:
    """Environment variable -> field, for one service."""
    return variables(settings_class(service))


def required(cls: type) -> set[str]:
    """Variables of ``cls`` with no default: a deployment must set them."""
    return {
        name
        for name, f in variables(cls).items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }


def unknown(names: Iterable[str], cls: type) -> set[str]:
    """The names among ``names`` that ``cls`` does not read."""
    return set(names) - set(variables(cls))


def missing_required(names: Iterable[str], cls: type) -> set[str]:
    """The required variables of ``cls`` not among ``names``."""
    return required(cls) - set(names)


# --------------------------------------------------------------------------- env files


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines of a Compose env_file (comments and blank lines skipped)."""
    values: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not re.fullmatch(r"[A-Z][A-Z0-9_]*", key):
            raise ValueError(f"{path.name}:{lineno}: not KEY=value: {line!r}")
        if key in values:
            raise ValueError(f"{path.name}:{lineno}: {key} set twice")
        values[key] = value
    return values


def documented_env_names(path: Path) -> set[str]:
    """Every variable an env template documents with a ``# NAME: meaning`` line."""
    return set(re.findall(r"^# ([A-Z][A-Z0-9_]*): ", path.read_text(), flags=re.M))


def _default_text(value: Any) -> str:
    if value is None or value is dataclasses.MISSING:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple | list):
        return ",".join(str(v) for v in value)
    return str(value)


def generate_env_example() -> str:
    """The content deploy/.env.example must have, from the settings classes."""
    per_service = {service: known(service) for service in SERVICES}
    compose_env = {service: compose_environment(service) for service in SERVICES}
    # Declaration order (related settings stay together), first appearance wins.
    names = list(dict.fromkeys(name for fields in per_service.values() for name in fields))
    users = {name: tuple(s for s in SERVICES if name in per_service[s]) for name in names}
    order = [
        tuple(SERVICES),
        ("gateway", "validator"),
        ("gateway", "lb"),
        ("validator", "lb"),
        ("gateway",),
        ("validator",),
        ("lb",),
    ]
    out = [
        "# Settings of the gateway, validator and lb for deploy/compose.yaml (env_file).",
        "#   cp deploy/.env.example deploy/.env   # then fill in every REQUIRED line",
        "# GENERATED from the settings classes by",
        "#   .venv/bin/python -m tests.deploy.deployfiles > deploy/.env.example",
        "# Do not edit by hand: tests/deploy checks it is in sync.",
        "#",
        "# A commented line shows a variable's default; uncomment it to change it.",
        "# Uncommented lines are what this Compose deployment sets. An empty value",
        "# counts as unset.",
    ]
    for group in order:
        members = [name for name in names if users[name] == group]
        if not members:
            continue
        title = "every service" if group == tuple(SERVICES) else " and ".join(group)
        out += ["", "#" * 78, f"# {title}", "#" * 78]
        for name in members:
            out.append("")
            fields = {service: per_service[service][name] for service in group}
            docs = {f.metadata.get("doc", "") for f in fields.values()}
            defaults = {service: _default_text(f.default) for service, f in fields.items()}
            doc = " / ".join(sorted(d for d in docs if d)) or "(undocumented)"
            out.append(f"# {name}: {doc}")
            set_by_compose = sorted(s for s in group if name in compose_env[s])
            if len(set(defaults.values())) > 1:
                if name in COMPOSE_VALUES:
                    raise ValueError(f"{name}: defaults differ per service, cannot share a value")
                each = ", ".join(f"{s} {d or '(unset)'}" for s, d in defaults.items())
                out.append(f"#   default: {each}")
                if set_by_compose:
                    out.append(f"#   compose.yaml sets it for: {', '.join(set_by_compose)}")
                continue
            default = next(iter(defaults.values()))
            if set_by_compose:
                out.append(f"#   compose.yaml sets it for: {', '.join(set_by_compose)}")
            if name in COMPOSE_VALUES:
                value = COMPOSE_VALUES[name]
                if value == "":
                    out.append(f"#   REQUIRED: {COMPOSE_REQUIRED[name]}")
                out.append(f"#   default: {default or '(unset)'}")
                out.append(f"{name}={value}")
            else:
                out.append(f"# {name}={default}")
    out += ["", "#" * 78, "# Compose only (interpolated in compose.yaml)", "#" * 78]
    for name, (default, doc) in COMPOSE_KNOBS.items():
        out += ["", f"# {name}: {doc}", f"# {name}={default}"]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- compose


def load_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def compose_environment(service: str, compose: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The `environment:` mapping of one Compose service, as strings."""
    spec = (compose or load_compose())["services"][service]
    env = spec.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def compose_env_files(service: str, compose: Mapping[str, Any] | None = None) -> list[str]:
    spec = (compose or load_compose())["services"][service]
    entries = spec.get("env_file") or []
    if isinstance(entries, str):
        entries = [entries]
    return [e if isinstance(e, str) else e["path"] for e in entries]


def compose_interpolations() -> set[str]:
    """Names interpolated as ${NAME...} in compose.yaml."""
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", COMPOSE.read_text()))


# --------------------------------------------------------------------------- Dockerfile


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def dockerfile_stages(text: str | None = None) -> dict[str, Stage]:
    """Stages by name, each with its (KEYWORD, arguments) instructions in order."""
    text = DOCKERFILE.read_text() if text is None else text
    logical: list[str] = []
    buffer = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        logical.append(buffer + stripped)
        buffer = ""
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            parts = args.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else str(len(stages))
            current = stages[name] = Stage(name, parts[0])
        elif current is not None:
            current.instructions.append((keyword, args.strip()))
    return stages


def stage_chain(stages: Mapping[str, Stage], name: str) -> list[Stage]:
    """The stage and the stages it is built FROM, nearest first."""
    chain = [stages[name]]
    while chain[-1].base in stages:
        chain.append(stages[chain[-1].base])
    return chain


def image_env(stages: Mapping[str, Stage], target: str) -> dict[str, str]:
    """ENV values in effect in ``target`` (inherited from its base stages)."""
    env: dict[str, str] = {}
    for stage in reversed(stage_chain(stages, target)):
        for args in stage.all("ENV"):
            for token in shlex.split(args):
                key, _, value = token.partition("=")
                env[key] = value
    return env


# --------------------------------------------------------------------------- Kubernetes


def k8s_documents(path: Path) -> Iterator[dict[str, Any]]:
    for doc in yaml.safe_load_all(path.read_text()):
        if doc:
            yield doc


def kustomization() -> dict[str, Any]:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


def applied_manifests() -> list[Path]:
    """The files kustomization.yaml applies."""
    return [K8S / name for name in kustomization()["resources"]]


def secret_templates() -> list[Path]:
    return sorted((K8S / "secrets").glob("*.yaml"))


def k8s_objects(paths: Iterable[Path]) -> dict[tuple[str, str], dict[str, Any]]:
    """(kind, name) -> object."""
    return {
        (doc["kind"], doc["metadata"]["name"]): doc for path in paths for doc in k8s_documents(path)
    }


def secret_data(secret: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in (secret.get("stringData") or {}).items()}


def container_env(
    container: Mapping[str, Any],
    objects: Mapping[tuple[str, str], Mapping[str, Any]],
    *,
    with_optional: bool = True,
) -> dict[str, str]:
    """The environment a container gets from envFrom and env (Secrets: their templates).

    Raises KeyError when a referenced ConfigMap or non-optional Secret is nowhere."""
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        if "configMapRef" in source:
            ref = source["configMapRef"]
            data = objects[("ConfigMap", ref["name"])].get("data") or {}
        else:
            ref = source["secretRef"]
            if ref.get("optional") and not with_optional:
                continue
            data = secret_data(objects[("Secret", ref["name"])])
        env.update({str(k): str(v) for k, v in data.items()})
    for entry in container.get("env") or []:
        if "value" in entry:
            env[entry["name"]] = str(entry["value"])
        else:
            ref = entry["valueFrom"]
            if "secretKeyRef" in ref:
                key = ref["secretKeyRef"]
                env[entry["name"]] = secret_data(objects[("Secret", key["name"])])[key["key"]]
            elif "configMapKeyRef" in ref:
                key = ref["configMapKeyRef"]
                env[entry["name"]] = str(objects[("ConfigMap", key["name"])]["data"][key["key"]])
            else:
                env[entry["name"]] = "<from field>"
    return env


if __name__ == "__main__":
    sys.stdout.write(generate_env_example())
