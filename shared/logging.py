"""structlog set-up: JSON lines in production, a readable console elsewhere.

Tracebacks are plain in both modes: never with local variables. structlog's console
renderer would otherwise use rich (or better-exceptions) when installed and print every
frame's locals, request bodies and upload buffers among them: slow, huge, and a leak.
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(environment: str = "development", level: str = "INFO") -> None:
    """Configure structlog and the stdlib root logger once per process."""
    numeric = logging.getLevelName(level.upper())
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if environment == "production":
        renderer: structlog.types.Processor = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Libraries log through stdlib; keep their warnings, drop aiohttp's own access log.
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr, force=True)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger bound to a component name.

    Built lazily at first use, so a module-level logger still honours configure_logging.
    """
    return structlog.get_logger(name, component=name)
