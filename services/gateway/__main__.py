"""``python -m services.gateway``: validate settings, configure logging, serve one process.

For several worker processes on one host, run gunicorn instead (see gunicorn_conf.py).
"""

from __future__ import annotations

import structlog
from aiohttp import web

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from shared.logging import configure_logging
from shared.settings import load_or_exit


def main() -> None:
    settings = load_or_exit(GatewaySettings)
    configure_logging(settings.environment, settings.log_level)
    log = structlog.get_logger("gateway")
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        access_log=None,
        print=lambda _: log.info("gateway_listening", host=settings.host, port=settings.port),
    )


if __name__ == "__main__":
    main()
