"""structlog set-up: JSON lines in production, a readable console elsewhere.

Tracebacks are plain in both modes: never with local variables. structlog's console
renderer would otherwise use rich (or better-exceptions) when installed and print every
frame's locals, request bodies and upload buffers among them: slow, huge, and a leak.

Production lines are rendered by orjson straight to bytes and written to stderr's binary
buffer: a quarter of the CPU of the stdlib json renderer and a text stream, on the path
every request takes (one access line each).
"""

from __future__ import annotations

import logging
import sys

import orjson
import structlog


def configure_logging(environment: str = "development", level: str = "INFO") -> None:
    """Configure structlog and the stdlib root logger once per process."""
    numeric = logging.getLevelName(level.upper())
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    factory: structlog.BytesLoggerFactory | structlog.PrintLoggerFactory
    binary = getattr(sys.stderr, "buffer", None)
    if environment == "production" and binary is not None:
        renderer: structlog.types.Processor = structlog.processors.JSONRenderer(
            serializer=_orjson_line
        )
        shared.append(structlog.processors.format_exc_info)
        factory = structlog.BytesLoggerFactory(file=binary)
    elif environment == "production":  # a text-only stderr (an embedding host's)
        renderer = structlog.processors.JSONRenderer()
        shared.append(structlog.processors.format_exc_info)
        factory = structlog.PrintLoggerFactory(file=sys.stderr)
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
        factory = structlog.PrintLoggerFactory(file=sys.stderr)
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    # Libraries log through stdlib; keep their warnings, drop aiohttp's own access log.
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr, force=True)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def _orjson_line(event: dict, **kwargs: object) -> bytes:
    """One JSON object; values orjson cannot encode natively (exceptions, paths, enums with
    odd types) as their str(), like structlog's own fallback."""
    return orjson.dumps(event, default=str, option=orjson.OPT_NON_STR_KEYS)


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    """A structlog logger bound to a component name.

    Built lazily at first use, so a module-level logger still honours configure_logging.
    """
    return structlog.get_logger(name, component=name)
