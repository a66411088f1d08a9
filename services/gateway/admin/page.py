"""GET /dashboard: one static page and its script and style, shipped with the package
(no build step, nothing from a CDN: operators' servers may have no internet access). The
page holds no data; its script polls the admin endpoints."""

from __future__ import annotations

from importlib import resources

from aiohttp import web

STATIC = resources.files("services.gateway.admin") / "static"

#: File name -> content type; nothing else is served from the static folder.
ASSETS = {
    "dashboard.js": "text/javascript",
    "dashboard.css": "text/css",
}

#: The page talks only to its own origin, runs only its own script and never in a frame.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _load() -> dict[str, bytes]:
    return {name: (STATIC / name).read_bytes() for name in ("dashboard.html", *ASSETS)}


FILES = _load()


async def dashboard(request: web.Request) -> web.Response:
    """The operator page."""
    return web.Response(
        body=FILES["dashboard.html"],
        content_type="text/html",
        charset="utf-8",
        headers=SECURITY_HEADERS,
    )


async def asset(request: web.Request) -> web.Response:
    """The page's script and style sheet."""
    name = request.match_info["name"]
    if name not in ASSETS:
        raise web.HTTPNotFound()
    return web.Response(
        body=FILES[name], content_type=ASSETS[name], charset="utf-8", headers=SECURITY_HEADERS
    )
