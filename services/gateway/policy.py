"""Which protections each route gets, and how the OpenAPI document shows them.

- submissions (the /v1 transcription and speech calls too): rate group ``submit``; an API
  key when API_KEYS_REQUIRED;
- task reads (status, output, listing, events) and cancellation: group ``read``; an API
  key when required;
- stats, /v1/models, the OpenAPI document and the docs page: group ``meta``; open to
  anonymous callers;
- health and /metrics: nothing. Probes and scrapers carry no key, and both are cheap.

A key sent to an open route is still checked (a wrong one is a 401) and counted under
its own identity. CORS preflights (OPTIONS) pass untouched: browsers send no credentials.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from services.gateway.settings import GatewaySettings
from shared.tasks import TaskType


@dataclass(frozen=True)
class Policy:
    group: str  # rate-limit group (services.gateway.rates.GROUPS)
    tasks: bool  # a task endpoint: needs an API key when API_KEYS_REQUIRED


_SUBMIT = Policy("submit", tasks=True)
_READ = Policy("read", tasks=True)
_META = Policy("meta", tasks=False)

#: Route name -> policy; routes not listed (health, metrics) are unprotected.
ROUTES: dict[str, Policy] = {
    **{f"submit_{t.value}": _SUBMIT for t in TaskType},
    "openai_transcriptions": _SUBMIT,
    "openai_speech": _SUBMIT,
    "get_task": _READ,
    "get_output": _READ,
    "cancel_task": _READ,
    "task_events": _READ,
    "list_tasks": _READ,
    "stats": _META,
    "openapi": _META,
    "docs": _META,
    "openai_models": _META,
}

BEARER, API_KEY_HEADER = "bearerAuth", "apiKeyAuth"


def policy_for(request: web.Request) -> Policy | None:
    """The matched route's policy; None for unprotected routes, unmatched paths and OPTIONS
    (aiohttp-cors' preflight routes share their resource's name)."""
    if request.method == "OPTIONS":
        return None
    return ROUTES.get(request.match_info.route.name or "")


_INT = {"schema": {"type": "integer", "minimum": 0}}


def error_response(description: str) -> dict[str, Any]:
    """An error answer, added after apispec resolved names: the reference spelled out."""
    schema = {"$ref": "#/components/schemas/Error"}
    return {"description": description, "content": {"application/json": {"schema": schema}}}


RATE_HEADERS = {
    "RateLimit-Limit": {"description": "bucket size: requests allowed in a burst", **_INT},
    "RateLimit-Remaining": {"description": "requests left in the bucket now", **_INT},
    "RateLimit-Reset": {"description": "seconds until the bucket is full again", **_INT},
    "RateLimit-Policy": {
        "description": 'the limit as "COUNT;w=SECONDS"',
        "schema": {"type": "string"},
    },
}


def _rate_limited() -> dict[str, Any]:
    response = error_response("rate limit exceeded (code rate_limited); retry after Retry-After")
    response["headers"] = {
        "Retry-After": {
            "description": "seconds to wait before the request can succeed",
            "required": True,
            **_INT,
        },
        **RATE_HEADERS,
    }
    return response


def document(spec: dict[str, Any], app: web.Application, settings: GatewaySettings) -> None:
    """Add security schemes, per-operation security, 401 and 429 answers and the RateLimit
    headers to ``spec`` (built by :func:`services.gateway.openapi.build_spec`)."""
    spec["components"]["securitySchemes"] = {
        BEARER: {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <key>"},
        API_KEY_HEADER: {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    }
    for route in app.router.routes():
        policy = ROUTES.get(route.name or "")
        path = spec["paths"].get(route.resource.canonical, {})
        op = path.get(route.method.lower())
        if policy is None or op is None:
            continue
        responses = op["responses"]
        schemes = [{BEARER: []}, {API_KEY_HEADER: []}]
        if policy.tasks and settings.api_keys_required:
            op["security"] = schemes
            responses["401"] = error_response("no API key, or a wrong or revoked one")
        else:
            op["security"] = [{}, *schemes]
            responses["401"] = error_response("a wrong or revoked API key (none is fine)")
        # Documented even for a group RATE_LIMITS turns off: a key's own rate may set it.
        responses["429"] = _rate_limited()
        for status, response in responses.items():
            if status.startswith("2"):
                response["headers"] = {**response.get("headers", {}), **RATE_HEADERS}
