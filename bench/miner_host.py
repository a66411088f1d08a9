"""An instant devnet miner (``devnet.miner``, profile accurate, latency 0) that also tells
the bench when each signed request arrived: ``GET /_bench/activity``.

    python -m bench.miner_host --port 9101 --wallet-path DIR --wallet-name NAME

Every accepted request is listed with its task id, the validator's nonce (its signing time,
ns since the epoch) and the time the miner received it (s since the epoch).
"""

from __future__ import annotations

import argparse
import time

import bittensor as bt
from aiohttp import web

from devnet import miner
from devnet.wallets import ensure_wallet
from shared.http import Handler
from shared.logging import configure_logging

RECEIVED = web.AppKey("received", dict)


@web.middleware
async def stamp(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Note the arrival time under the request's nonce, before the body is even read."""
    nonce = request.headers.get(bt.http_auth.HEADER_NONCE)
    if nonce is not None:
        request.app[RECEIVED][nonce] = time.time()
    return await handler(request)


async def activity(request: web.Request) -> web.Response:
    received = request.app[RECEIVED]
    accepted = [
        {**entry, "received": received.get(str(entry["nonce"]))}
        for entry in request.app[miner.ACTIVITY].accepted
    ]
    return web.json_response({"accepted": accepted})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.miner_host", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--wallet-path", required=True)
    parser.add_argument("--wallet-name", required=True)
    args = parser.parse_args(argv)
    configure_logging("production", "WARNING")
    wallet = ensure_wallet(args.wallet_path, args.wallet_name, "default")
    app = miner.create_app(miner.ProfileConfig(profile="accurate", latency=0.0), wallet)
    app.middlewares.append(stamp)
    app[RECEIVED] = {}
    app.router.add_get("/_bench/activity", activity)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
