"""docs/api.md stays complete: every route, every variable and every error code."""

from __future__ import annotations

import re
from pathlib import Path

from services.gateway.settings import GatewaySettings
from shared.settings import variables

REPO = Path(__file__).resolve().parents[2]
DOC = (REPO / "docs" / "api.md").read_text()

# Every way the gateway's code names an error code.
_CODE_PATTERNS = [
    r'ApiError\(\s*\d{3},\s*"([a-z_]+)"',
    r'error_response\(\s*\d{3},\s*"([a-z_]+)"',
    r'Problem\(\s*"([a-z_]+)"',
    r'CodedLength\(\s*"([a-z_]+)"',
    r'"error_code": "([a-z_]+)"',
    r'^\s+\d{3}: "([a-z_]+)",$',
    r'"code": "([a-z_]+)"',
]


def _codes() -> set[str]:
    codes = set()
    for source in (REPO / "services" / "gateway").glob("*.py"):
        text = source.read_text()
        for pattern in _CODE_PATTERNS:
            codes.update(re.findall(pattern, text, flags=re.MULTILINE))
    return codes


def test_every_error_code_is_documented():
    codes = _codes()
    assert {"not_audio", "redis_unavailable", "not_found", "text_too_long"} <= codes
    assert sorted(c for c in codes if f"`{c}`" not in DOC) == []


def test_every_variable_is_documented():
    assert sorted(n for n in variables(GatewaySettings) if f"| `{n}` |" not in DOC) == []


async def test_every_route_is_documented(client):
    for route in client.app.router.routes():
        assert route.resource.canonical in DOC, route.resource.canonical
