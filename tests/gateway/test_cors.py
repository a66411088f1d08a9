"""CORS: nothing allowed by default; configured origins, methods and headers only."""

from __future__ import annotations

import pytest

from shared.settings import SettingsError

from .conftest import gateway_settings

APP = "https://app.example.com"


def _preflight(method: str = "POST", headers: str = "content-type", origin: str = APP):
    return {
        "Origin": origin,
        "Access-Control-Request-Method": method,
        "Access-Control-Request-Headers": headers,
    }


async def test_nothing_is_allowed_by_default(client):
    resp = await client.options("/api/v1/tts", headers=_preflight())
    assert resp.status == 405
    assert "Access-Control-Allow-Origin" not in resp.headers
    resp = await client.post("/api/v1/tts", json={"text": "hi"}, headers={"Origin": APP})
    assert resp.status == 202 and "Access-Control-Allow-Origin" not in resp.headers


async def test_a_configured_origin_gets_preflights_and_readable_answers(make_gateway, redis):
    client = await make_gateway(
        cors_allow_origins=f"{APP}/, https://other.example.org",
        cors_allow_methods="get,post",
        cors_allow_headers="Content-Type,Authorization,Idempotency-Key",
        cors_max_age=120,
    )
    resp = await client.options(
        "/api/v1/tts", headers=_preflight(headers="content-type, authorization")
    )
    assert resp.status == 200
    assert resp.headers["Access-Control-Allow-Origin"] == APP
    assert resp.headers["Access-Control-Allow-Methods"] == "POST"
    allowed = {h.strip().lower() for h in resp.headers["Access-Control-Allow-Headers"].split(",")}
    assert allowed == {"content-type", "authorization"}
    assert resp.headers["Access-Control-Max-Age"] == "120"
    assert "Access-Control-Allow-Credentials" not in resp.headers

    resp = await client.post("/api/v1/tts", json={"text": "hi"}, headers={"Origin": APP})
    assert resp.status == 202 and resp.headers["Access-Control-Allow-Origin"] == APP
    exposed = set(resp.headers["Access-Control-Expose-Headers"].split(","))
    assert {"Location", "Retry-After", "RateLimit-Remaining", "X-Request-ID"} <= exposed
    # Refusals are readable by the page too, so it can show why.
    resp = await client.post("/api/v1/tts", json={"text": ""}, headers={"Origin": APP})
    assert resp.status == 400 and resp.headers["Access-Control-Allow-Origin"] == APP


@pytest.mark.parametrize(
    "headers",
    [
        _preflight(origin="https://evil.example.net"),
        _preflight(method="PUT"),  # DELETE is allowed: it cancels a task
        _preflight(headers="content-type, x-custom"),
    ],
)
async def test_other_origins_methods_and_headers_are_refused(make_gateway, redis, headers):
    client = await make_gateway(cors_allow_origins=APP)
    resp = await client.options("/api/v1/tts", headers=headers)
    assert resp.status == 403
    assert (await resp.json())["error"]["code"] == "forbidden"
    assert "Access-Control-Allow-Origin" not in resp.headers
    resp = await client.get("/api/v1/tasks", headers={"Origin": "https://evil.example.net"})
    assert resp.status == 200 and "Access-Control-Allow-Origin" not in resp.headers


async def test_preflights_need_no_key_and_cost_no_token(make_gateway, redis):
    client = await make_gateway(
        cors_allow_origins="*", api_keys_required="true", rate_limits="submit=1/min"
    )
    for _ in range(3):
        assert (await client.options("/api/v1/tts", headers=_preflight())).status == 200
    resp = await client.post("/api/v1/tts", json={"text": "hi"}, headers={"Origin": APP})
    assert resp.status == 401 and resp.headers["Access-Control-Allow-Origin"] == APP


@pytest.mark.parametrize("origin", ["app.example.com", "https://a.com/path", "ftp://a.com"])
def test_bad_origins_stop_the_gateway(origin, redis_url):
    with pytest.raises(SettingsError, match=r"^CORS_ALLOW_ORIGINS:"):
        gateway_settings(redis_url, cors_allow_origins=origin)
