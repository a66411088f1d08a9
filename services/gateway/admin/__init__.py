"""The operator surface of the gateway: GET /dashboard, the JSON admin endpoints under
/api/v1/admin/, and the queue collector behind the gateway_queue_* gauges.

Everything here reads Redis, so it is right whichever gateway and validator replicas run.
Access: services.gateway.admin.access. The routes are left out of the public OpenAPI
document (services.gateway.openapi.internal); docs/operations.md describes them.
"""

from __future__ import annotations

from aiohttp import web

from services.gateway.admin import page
from services.gateway.admin.access import admin_only
from services.gateway.admin.collector import queue_collector
from services.gateway.admin.views import ENDPOINTS
from services.gateway.openapi import internal

ADMIN_PREFIX = "/api/v1/admin"


def setup_admin(app: web.Application) -> None:
    """Add the operator routes and the queue collector to the gateway ``app``."""
    router = app.router
    router.add_get("/dashboard", internal(admin_only(page.dashboard)), name="dashboard")
    router.add_get(
        "/dashboard/static/{name}", internal(admin_only(page.asset)), name="dashboard_asset"
    )
    for suffix, handler in ENDPOINTS.items():
        router.add_get(
            f"{ADMIN_PREFIX}/{suffix}", internal(admin_only(handler)), name=f"admin_{suffix}"
        )
    app.cleanup_ctx.append(queue_collector)
