"""Logs never show local variables (request bodies, upload buffers), in either mode."""

from __future__ import annotations

import pytest
import structlog

from shared.logging import configure_logging

MARKER = "body-bytes-that-must-not-be-logged"


@pytest.mark.parametrize("environment", ["development", "production"])
def test_tracebacks_carry_no_local_variables(environment, capsys):
    configure_logging(environment)
    log = structlog.get_logger("test")

    def handler() -> None:
        upload_buffer = MARKER * 10  # a local, as an upload buffer would be
        raise ValueError(f"failed after {len(upload_buffer)} bytes")

    try:
        handler()
    except ValueError:
        log.exception("unhandled_error")
    err = capsys.readouterr().err
    structlog.reset_defaults()
    assert "unhandled_error" in err and "Traceback" in err and "ValueError" in err
    assert MARKER not in err
