"""The OpenAPI document: valid OpenAPI 3, complete, true to the schemas and to real answers."""

from __future__ import annotations

import base64
import json

import pytest

from services.gateway.openapi import INTERNAL, OPERATION_ATTR
from shared.store import TaskStore
from shared.tasks import Status

from .conftest import audio_form

openapi_spec_validator = pytest.importorskip(
    "openapi_spec_validator", reason="openapi-spec-validator is a dev extra"
)
openapi_schema_validator = pytest.importorskip("openapi_schema_validator")


async def _spec(client) -> dict:
    resp = await client.get("/api/v1/openapi.json")
    assert resp.status == 200
    return await resp.json()


def _check(spec: dict, path: str, method: str, status: int, body: object) -> None:
    """Validate one real response body against the spec's schema for it."""
    response = spec["paths"][path][method]["responses"][str(status)]
    schema = response["content"]["application/json"]["schema"]
    validator = openapi_schema_validator.OAS30Validator(
        {**schema, "components": spec["components"]},
        format_checker=openapi_schema_validator.oas30_format_checker,
    )
    validator.validate(body)


async def test_spec_is_valid_openapi_3(client):
    spec = await _spec(client)
    assert spec["openapi"].startswith("3.")
    openapi_spec_validator.validate(spec)


async def test_every_route_is_documented(client):
    spec = await _spec(client)
    routes = {
        (route.resource.canonical, route.method.lower())
        for route in client.app.router.routes()
        if route.method != "HEAD" and getattr(route.handler, OPERATION_ATTR, None) is not INTERNAL
    }
    documented = {(path, method) for path, ops in spec["paths"].items() for method in ops}
    assert routes == documented
    assert ("/api/v1/tasks/{task_id}/output", "get") in documented


async def test_spec_carries_the_enforced_limits(make_gateway, redis):
    client = await make_gateway(tts_max_chars=77, allowed_languages="en,fr")
    schemas = (await _spec(client))["components"]["schemas"]
    assert schemas["TtsSubmission"]["properties"]["text"]["maxLength"] == 77
    assert schemas["SummarizationSubmission"]["properties"]["text"]["maxLength"] == 50_000
    assert schemas["TtsSubmission"]["properties"]["source_language"]["enum"] == ["en", "fr"]
    assert schemas["TtsSubmission"]["additionalProperties"] is False
    transcription = schemas["TranscriptionSubmission"]
    assert transcription["properties"]["audio_file"]["format"] == "binary"
    assert transcription["properties"]["callback_url"]["maxLength"] == 2048
    assert transcription["required"] == ["audio_file"]


async def test_real_answers_match_the_spec(client, redis, wav):
    spec = await _spec(client)
    resp = await client.post("/api/v1/transcription", data=audio_form(wav))
    accepted = await resp.json()
    _check(spec, "/api/v1/transcription", "post", 202, accepted)
    task_id = accepted["task_id"]
    resp = await client.post("/api/v1/tts", json={"text": "hi", "source_language": "zz"})
    _check(spec, "/api/v1/tts", "post", 400, await resp.json())

    task_path = "/api/v1/tasks/{task_id}"
    _check(spec, task_path, "get", 200, await (await client.get(f"/api/v1/tasks/{task_id}")).json())
    store = TaskStore(redis, 60)
    await store.transition(task_id, Status.PROCESSING, expect=[Status.PENDING])
    result = {"model_used": "m", "processing_time": 1, "accuracy_score": 1, "speed_score": 0.5}
    await store.transition(
        task_id,
        Status.COMPLETED,
        expect=[Status.PROCESSING],
        fields={"result": json.dumps({**result, "miner_uid": 3})},
        output=b"text",
    )
    done = await (await client.get(f"/api/v1/tasks/{task_id}")).json()
    assert base64.b64decode(done["result"]["output_data"]) == b"text"
    _check(spec, task_path, "get", 200, done)
    _check(spec, task_path, "get", 404, await (await client.get("/api/v1/tasks/x")).json())
    _check(spec, "/api/v1/tasks", "get", 200, await (await client.get("/api/v1/tasks")).json())
    _check(spec, "/api/v1/health", "get", 200, await (await client.get("/api/v1/health")).json())
    _check(spec, "/api/v1/stats", "get", 200, await (await client.get("/api/v1/stats")).json())


async def test_unhealthy_answer_matches_the_spec(make_gateway):
    from devnet.redis_server import free_port

    client = await make_gateway(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    spec = await _spec(client)
    resp = await client.get("/api/v1/health")
    _check(spec, "/api/v1/health", "get", 503, await resp.json())


async def test_docs_page_lists_every_endpoint_without_scripts(client):
    spec = await _spec(client)
    resp = await client.get("/api/v1/docs")
    assert resp.status == 200 and resp.content_type == "text/html"
    page = await resp.text()
    assert "<script" not in page
    for path, ops in spec["paths"].items():
        for method in ops:
            assert f"{method.upper()}</span> <code>{path}</code>" in page
    assert "maxLength=10000" in page and "audio_file" in page


@pytest.mark.parametrize("required", ["false", "true"])
async def test_spec_shows_keys_limits_and_idempotency(make_gateway, redis, required):
    client = await make_gateway(api_keys_required=required, rate_limits="read=off")
    spec = await _spec(client)
    openapi_spec_validator.validate(spec)
    assert set(spec["components"]["securitySchemes"]) == {"bearerAuth", "apiKeyAuth"}
    schemes = [{"bearerAuth": []}, {"apiKeyAuth": []}]
    for path, method in [("/api/v1/tts", "post"), ("/api/v1/tasks/{task_id}", "get")]:
        op = spec["paths"][path][method]
        assert op["security"] == (schemes if required == "true" else [{}, *schemes])
        assert {"401", "429"} <= set(op["responses"])
        assert op["responses"]["429"]["headers"]["Retry-After"]["required"] is True
    # Open routes stay open; probes are not limited at all.
    assert spec["paths"]["/api/v1/stats"]["get"]["security"] == [{}, *schemes]
    assert "429" not in spec["paths"]["/api/v1/health"]["get"]["responses"]
    tts = spec["paths"]["/api/v1/tts"]["post"]
    assert [p["name"] for p in tts["parameters"]] == ["Idempotency-Key"]
    assert {"408", "422"} <= set(tts["responses"])
    assert "RateLimit-Remaining" in tts["responses"]["202"]["headers"]
    text = spec["components"]["schemas"]["TtsSubmission"]["properties"]["text"]
    assert text["pattern"] == r"\S"
