"""A human docs page rendered on the server from the OpenAPI document (no CDN, no script)."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from aiohttp import web

from services.gateway.openapi import operation
from services.gateway.state import OPENAPI_SPEC

_STYLE = """
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}
code,pre{font:13px ui-monospace,monospace;background:#f4f4f4;padding:.1rem .3rem}
section{border-top:1px solid #ddd;padding:.5rem 0}
.m{display:inline-block;min-width:4rem;font-weight:bold}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left}
"""


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        return spec["components"]["schemas"][ref.rsplit("/", 1)[1]]
    return schema


_SHOWN = ("type", "format", "enum", "minLength", "maxLength", "minimum", "maximum", "default")


def _constraints(prop: dict[str, Any]) -> str:
    """A property's validation keywords, e.g. ``type="string", maxLength=10000``."""
    shown = {k: prop[k] for k in (*_SHOWN, "nullable") if k in prop}
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in shown.items())


def _fields_table(spec: dict[str, Any], schema: dict[str, Any]) -> str:
    schema = _resolve(spec, schema)
    props = schema.get("properties", {})
    if not props:
        return ""
    required = set(schema.get("required", []))
    rows = "".join(
        f"<tr><td><code>{escape(name)}</code>{' *' if name in required else ''}</td>"
        f"<td>{escape(_constraints(prop))}</td><td>{escape(prop.get('description', ''))}</td></tr>"
        for name, prop in props.items()
    )
    return f"<table><tr><th>field</th><th>schema</th><th>meaning</th></tr>{rows}</table>"


def _operation(spec: dict[str, Any], path: str, method: str, op: dict[str, Any]) -> str:
    parts = [
        f'<section id="{escape(op.get("operationId", ""))}">',
        f'<h3><span class="m">{method.upper()}</span> <code>{escape(path)}</code></h3>',
        f"<p><b>{escape(op.get('summary', ''))}</b> {escape(op.get('description', ''))}</p>",
    ]
    params = op.get("parameters", [])
    if params:
        items = "".join(
            f"<li><code>{escape(p['name'])}</code> ({escape(p['in'])}): "
            f"{escape(_constraints(p.get('schema', {})))} {escape(p.get('description', ''))}</li>"
            for p in params
        )
        parts.append(f"<p>Parameters:</p><ul>{items}</ul>")
    for media, body in op.get("requestBody", {}).get("content", {}).items():
        parts.append(f"<p>Request body <code>{escape(media)}</code>:</p>")
        parts.append(_fields_table(spec, body.get("schema", {})))
    items = "".join(
        f"<li><code>{escape(status)}</code> {escape(resp.get('description', ''))}</li>"
        for status, resp in op.get("responses", {}).items()
    )
    parts.append(f"<p>Responses:</p><ul>{items}</ul></section>")
    return "".join(parts)


def render(spec: dict[str, Any]) -> str:
    """The whole page: every path and method in the spec, then every component schema."""
    ops = [
        _operation(spec, path, method, op)
        for path, methods in spec["paths"].items()
        for method, op in methods.items()
    ]
    schemas = "".join(
        f'<section><h3 id="schema-{escape(name)}">{escape(name)}</h3>'
        f"{_fields_table(spec, schema)}</section>"
        for name, schema in spec["components"]["schemas"].items()
    )
    info = spec["info"]
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>{escape(info['title'])}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{escape(info['title'])} {escape(info['version'])}"
        f"</h1><p>{escape(info.get('description', ''))}</p><p>Machine-readable: "
        f'<a href="/api/v1/openapi.json">/api/v1/openapi.json</a></p><h2>Endpoints</h2>'
        f"{''.join(ops)}<h2>Schemas</h2>{schemas}</body></html>"
    )


@operation(
    "Human-readable API documentation",
    tags=["docs"],
    responses={"200": {"description": "an HTML page", "content": {"text/html": {"schema": {}}}}},
)
async def docs_page(request: web.Request) -> web.Response:
    """Every endpoint, its parameters, body fields and responses, rendered from the spec."""
    return web.Response(text=render(request.app[OPENAPI_SPEC]), content_type="text/html")
