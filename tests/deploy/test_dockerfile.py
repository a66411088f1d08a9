"""deploy/Dockerfile and .dockerignore: lint, one extra per image, non-root, health checks."""

from __future__ import annotations

import fnmatch
import json
import re
import tomllib
from pathlib import Path

import pytest

from tests.deploy.deployfiles import (
    DOCKERFILE,
    ROOT,
    Stage,
    dockerfile_stages,
    image_env,
    known,
    stage_chain,
)
from tests.deploy.tools import run, tool

SERVICE_TARGETS = ("gateway", "validator", "lb")
TARGETS = (*SERVICE_TARGETS, "devnet")
#: Health endpoint and the variable holding the port, per service (as in docs/deploy.md).
HEALTH = {
    "gateway": ("PORT", "/api/v1/health"),
    "validator": ("VALIDATOR_PORT", "/health"),
    "lb": ("PORT", "/health"),
}


def hadolint(path: Path) -> list[dict[str, object]]:
    """hadolint's findings at every level (error, warning, info, style)."""
    result = run(tool("hadolint"), "--format", "json", "--failure-threshold", "style", str(path))
    assert result.stdout.strip(), result.stderr
    return json.loads(result.stdout)


def test_hadolint_finds_nothing() -> None:
    findings = hadolint(DOCKERFILE)
    assert findings == [], "\n".join(f"{f['line']}: {f['code']} {f['message']}" for f in findings)


def test_hadolint_flags_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /tmp && pip install requests\n")
    codes = {f["code"] for f in hadolint(bad)}
    assert {"DL3007", "DL3003", "DL3013", "DL3042"} <= codes


def healthcheck(stage: Stage) -> tuple[str, str, str]:
    """(port variable, default port, path) of a stage's HEALTHCHECK python -c urllib probe."""
    (args,) = stage.all("HEALTHCHECK")
    argv = json.loads(args[args.index("CMD") + 3 :].strip())
    assert argv[:2] == ["python", "-c"], argv
    match = re.search(
        r"urlopen\('http://127\.0\.0\.1:' \+ os\.environ\.get\('(\w+)', '(\d+)'\) \+ '(/[^']*)'",
        argv[2],
    )
    assert match, argv[2]
    return match.group(1), match.group(2), match.group(3)


@pytest.mark.parametrize("target", TARGETS)
def test_each_image_installs_only_its_extra_and_ships_only_the_venv(target: str) -> None:
    stages = dockerfile_stages()
    chain = stage_chain(stages, target)
    # Final images start from a fresh slim Python, never from a builder.
    assert chain[-1].base in {"python:3.11-slim", "python:3.12-slim"}
    assert all(s.name != "builder" for s in chain), [s.name for s in chain]
    copies = [c for s in chain for c in s.all("COPY") if c.startswith("--from=")]
    assert copies == [f"--from=build-{target} /opt/venv /opt/venv"]
    installs = [
        re.findall(r"\"\.\[([a-z,]+)\]\"", r)
        for s in stage_chain(stages, f"build-{target}")
        for r in s.all("RUN")
        if "pip install" in r
    ]
    assert [extras for extras in installs if extras] == [[target]]


@pytest.mark.parametrize("target", TARGETS)
def test_images_run_as_a_numeric_non_root_user(target: str) -> None:
    users = [u for s in reversed(stage_chain(dockerfile_stages(), target)) for u in s.all("USER")]
    assert users, "no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, users[-1]


@pytest.mark.parametrize("service", SERVICE_TARGETS)
def test_healthcheck_probes_the_service_health_endpoint_on_its_default_port(service: str) -> None:
    stages = dockerfile_stages()
    variable, default, path = healthcheck(stages[service])
    assert (variable, path) == HEALTH[service]
    # The fallback port is the settings default, unless the image sets the variable.
    expected = image_env(stages, service).get(variable, str(known(service)[variable].default))
    assert default == expected
    cmd = stages[service].all("CMD")
    assert json.loads(cmd[-1]) == ["python", "-m", f"services.{service}"]


def test_devnet_image_leaves_health_checks_to_compose() -> None:
    assert dockerfile_stages()["devnet"].all("HEALTHCHECK") == ["NONE"]


def test_lb_extra_pulls_in_neither_redis_nor_bittensor() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lb_requirements = project["dependencies"] + project["optional-dependencies"]["lb"]
    names = {re.split(r"[\s<>=!~;\[]", req, maxsplit=1)[0].lower() for req in lb_requirements}
    assert not names & {"redis", "bittensor", "bittensor-audio-gateway"}, names


# --------------------------------------------------------------------------- .dockerignore


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule, simplified: the last pattern matching the path or a parent decides."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern.removeprefix("!").strip("/")
        candidates = [pattern]
        if pattern.startswith("**/"):
            candidates.append(pattern[3:])
        if any(fnmatch.fnmatchcase(p, c) for p in prefixes for c in candidates):
            excluded = not negate
    return excluded


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize(
    "path",
    [
        ".git/config",
        ".venv/bin/python",
        "var/wallets/devnet-validator/coldkey",
        "tests/conftest.py",
        "bench/results/run.json",
        "deploy/.env",
        "deploy/devnet.env",
        "services/gateway/__pycache__/app.cpython-311.pyc",
        "somewhere/wallets/x/hotkeys/default",
    ],
)
def test_dockerignore_keeps_state_and_secrets_out(path: str) -> None:
    assert dockerignored(path, dockerignore_patterns())


def test_dockerignore_keeps_what_the_dockerfile_copies() -> None:
    sources = [
        src
        for stage in dockerfile_stages().values()
        for copy in stage.all("COPY")
        if not copy.startswith("--from=")
        for src in copy.split()[:-1]
    ]
    assert "pyproject.toml" in sources
    for src in sources:
        assert (ROOT / src).exists(), src
        assert not dockerignored(src, dockerignore_patterns()), src
        if (ROOT / src).is_dir():
            assert not dockerignored(f"{src}/__init__.py", dockerignore_patterns()), src


def test_dockerignore_matcher_can_say_no() -> None:
    assert not dockerignored("services/gateway/app.py", ["var", "!services"])
    assert dockerignored("var/x", ["var"])
    assert not dockerignored("var/keep", ["var", "!var/keep"])
