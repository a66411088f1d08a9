"""``python -m services.lb``: validate settings, configure logging, serve.

uvloop is used when installed (the lb extra); the relay is I/O-bound, and uvloop's
transports cost less CPU per request.
"""

from __future__ import annotations

from aiohttp import web

from services.lb.app import create_app
from services.lb.settings import LbSettings
from shared.http import new_event_loop
from shared.logging import configure_logging, get_logger
from shared.settings import load_or_exit

#: Server read buffer per connection: fewer, larger chunks through the upload relay
#: (less per-chunk work), at a bounded cost of a few MiB per concurrent upload.
READ_BUFSIZE = 1 << 20


def main() -> None:
    settings = load_or_exit(LbSettings)
    configure_logging(settings.environment, settings.log_level)
    log = get_logger("lb")
    web.run_app(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        access_log=None,
        # A client that goes away cancels its handler, which closes the upstream request.
        handler_cancellation=True,
        read_bufsize=READ_BUFSIZE,
        loop=new_event_loop(),
        print=lambda _: log.info("lb_listening", host=settings.host, port=settings.port),
    )


if __name__ == "__main__":
    main()
