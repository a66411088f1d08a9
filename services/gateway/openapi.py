"""The OpenAPI 3 document, generated from the routes and the marshmallow schemas.

Each handler carries its operation (summary, parameters, responses) via :func:`operation`;
:func:`build_spec` walks the router, so a route without documentation fails app creation
instead of silently missing from the spec.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from services.gateway import responses
from services.gateway.state import OPENAPI_SPEC

H = TypeVar("H", bound=Callable[..., Any])

OPERATION_ATTR = "__openapi__"
API_VERSION = "1.0.0"

DESCRIPTION = """\
Public front door of a Bittensor audio subnet. Submit transcription, text-to-speech and
summarization tasks, then poll `GET /api/v1/tasks/{task_id}` (or give a `callback_url`).
Every error answers `{"error": {"code", "message", "field"}}`."""


def json_content(schema: Any) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": json_content("Error")}


def operation(summary: str, *, tags: list[str], **fields: Any) -> Callable[[H], H]:
    """Attach an OpenAPI operation object to a handler (``fields``: responses, parameters,
    requestBody, description)."""

    def attach(handler: H) -> H:
        spec = {"summary": summary, "tags": tags, **fields}
        spec.setdefault("description", (handler.__doc__ or "").strip())
        spec.setdefault("operationId", handler.__name__)
        setattr(handler, OPERATION_ATTR, spec)
        return handler

    return attach


#: The mark of an operator route (the dashboard, /api/v1/admin/*): left out of the public
#: API document on purpose; docs/operations.md describes those routes.
INTERNAL: dict[str, Any] = {}


def internal(handler: H) -> H:
    """Mark ``handler`` as an operator route, not part of the public API document."""
    setattr(handler, OPERATION_ATTR, INTERNAL)
    return handler


def build_spec(app: web.Application) -> dict[str, Any]:
    """The OpenAPI 3.0 document for every route of ``app`` (HEAD twins left out)."""
    spec = APISpec(
        title="Bittensor audio gateway",
        version=API_VERSION,
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": DESCRIPTION},
    )
    spec.components.schema("Error", schema=responses.Error)
    for route in app.router.routes():
        if route.method == "HEAD":
            continue
        op = getattr(route.handler, OPERATION_ATTR, None)
        if op is INTERNAL:
            continue
        if op is None:
            raise RuntimeError(f"{route.method} {route.resource.canonical} has no operation")
        op = {**op, "responses": {**op["responses"], "default": error_response("an error")}}
        spec.path(path=route.resource.canonical, operations={route.method.lower(): op})
    return spec.to_dict()


@operation(
    "This API's OpenAPI 3 document",
    tags=["docs"],
    responses={"200": {"description": "the OpenAPI document", "content": json_content({})}},
)
async def openapi_json(request: web.Request) -> web.Response:
    """Generated from the same marshmallow schemas that validate requests."""
    return web.json_response(request.app[OPENAPI_SPEC])
