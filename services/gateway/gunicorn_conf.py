"""gunicorn configuration: several gateway worker processes on one host.

    gunicorn -c python:services.gateway.gunicorn_conf services.gateway.app:gunicorn_app

Binds HOST:PORT with WORKERS processes (command-line flags such as ``-w`` still win),
closes connections idle for IDLE_TIMEOUT,
uses aiohttp's uvloop worker when uvloop is installed, and points prometheus-client at a
shared directory so /metrics sums every worker.
"""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import tempfile

from services.gateway.settings import GatewaySettings
from shared.settings import load_or_exit

_settings = load_or_exit(GatewaySettings)

bind = f"{_settings.host}:{_settings.port}"
workers = _settings.workers
# aiohttp's worker passes this on as keepalive_timeout: IDLE_TIMEOUT, also the deadline for
# a connection's first request head.
keepalive = max(1, math.ceil(_settings.idle_timeout))  # gunicorn wants whole seconds
worker_class = (
    "aiohttp.GunicornUVLoopWebWorker"
    if importlib.util.find_spec("uvloop")
    else "aiohttp.GunicornWebWorker"
)
# gunicorn 27+ opens a control socket at one fixed path per user; several gateways (or a
# gateway and another gunicorn app) on one host would contend for it. Older gunicorns
# ignore this name.
control_socket_disable = True
# Set before anything imports prometheus_client (it picks its value store at import), so
# nothing here may import services.gateway.metrics.
_METRICS_DIR = None
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    _METRICS_DIR = tempfile.mkdtemp(prefix="gateway-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _METRICS_DIR


def child_exit(server: object, worker: object) -> None:
    """Drop a dead worker's live gauges from the shared metrics directory."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[attr-defined]


def on_exit(server: object) -> None:
    """Remove the metrics directory this configuration created."""
    if _METRICS_DIR is not None:
        shutil.rmtree(_METRICS_DIR, ignore_errors=True)
