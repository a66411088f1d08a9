"""``python -m bench.bare --port N``: the floor the gateway is measured against.

A bare aiohttp handler that reads the request body and answers 202 with a small JSON
object, on the same event loop the gateway serves on (uvloop where installed,
:func:`shared.http.new_event_loop`), with no access log, middleware or Redis.
"""

from __future__ import annotations

import argparse

from aiohttp import web

from shared.http import new_event_loop

ANSWER = {"task_id": "0" * 32, "status": "pending"}


async def accept(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response(ANSWER, status=202)


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_post("/{tail:.*}", accept)
    app.router.add_get("/health", health)
    web.run_app(
        app,
        host="127.0.0.1",
        port=args.port,
        access_log=None,
        print=None,
        loop=new_event_loop(),
    )


if __name__ == "__main__":
    main()
