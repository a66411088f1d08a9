"""CORS (aiohttp-cors): which browser origins may call the API. None unless configured.

With CORS_ALLOW_ORIGINS empty nothing is set up: browsers keep other origins out. Once
origins are listed, every route answers their preflights with CORS_ALLOW_METHODS and
CORS_ALLOW_HEADERS, and answers (errors included) expose the headers a client needs.
No cookies are involved (keys travel in headers), so credentials are never allowed.
"""

from __future__ import annotations

import aiohttp_cors
from aiohttp import web

from services.gateway.settings import GatewaySettings

#: Response headers a browser script may read: where the task is, and the rate limits.
EXPOSED = (
    "Location",
    "Retry-After",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "RateLimit-Policy",
    "Idempotent-Replayed",
    "X-Request-ID",
)


def setup_cors(app: web.Application, settings: GatewaySettings) -> None:
    """Enable CORS on every route for the configured origins (call after adding routes)."""
    if not settings.cors_allow_origins:
        return
    options = aiohttp_cors.ResourceOptions(
        allow_credentials=False,
        expose_headers=EXPOSED,
        allow_headers=settings.cors_allow_headers,
        allow_methods=settings.cors_allow_methods,
        max_age=settings.cors_max_age,
    )
    cors = aiohttp_cors.setup(app, defaults=dict.fromkeys(settings.cors_allow_origins, options))
    for route in list(app.router.routes()):
        cors.add(route)
