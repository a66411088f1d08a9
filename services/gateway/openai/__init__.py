"""OpenAI-compatible audio API on the gateway's port (docs/openai.md): /v1/audio/transcriptions,
/v1/audio/speech and /v1/models, over the gateway's shared submission core."""

from __future__ import annotations

from aiohttp import web

from services.gateway.errors import ERROR_RENDERERS
from services.gateway.openai import errors, routes
from services.gateway.openai.schemas import speech_schema, transcription_schema
from services.gateway.settings import GatewaySettings

__all__ = ["setup_openai"]


def setup_openai(app: web.Application, settings: GatewaySettings) -> None:
    """Add the /v1 routes, their schemas and their error shape to the gateway ``app``."""
    app[ERROR_RENDERERS] = (*app.get(ERROR_RENDERERS, ()), (errors.PREFIX, errors.render))
    router = app.router
    router.add_post(
        "/v1/audio/transcriptions",
        routes.transcriptions_handler(transcription_schema(settings)),
        name="openai_transcriptions",
    )
    router.add_post(
        "/v1/audio/speech", routes.speech_handler(speech_schema(settings)), name="openai_speech"
    )
    router.add_get("/v1/models", routes.list_models, name="openai_models")
