"""``python -m services.gateway [serve | keys create|list|revoke]``.

With no subcommand (or ``serve``) the gateway serves. ``keys`` manages API keys in the
Redis the settings point at (REDIS_URL...):

    python -m services.gateway keys create --name NAME [--rate 60/min] [--admin]
    python -m services.gateway keys list
    python -m services.gateway keys revoke PREFIX

``create`` prints the full key alone on stdout, once (``KEY=$(... keys create ...)``);
notes go to stderr. Exit status: 0 done, 1 no such prefix, 2 bad arguments or settings,
3 Redis is full (maxmemory reached) and refused the change: nothing was written.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import structlog
from aiohttp import web
from redis.exceptions import RedisError

from services.gateway.apikeys import ApiKey, ApiKeys
from services.gateway.app import create_app, freeze_startup_objects
from services.gateway.rates import parse_limits
from services.gateway.settings import GatewaySettings
from shared.http import new_event_loop
from shared.logging import configure_logging
from shared.redis import create_redis, storage_full
from shared.settings import load_or_exit
from shared.tasks import iso

MAX_NAME_CHARS = 100


def serve(settings: GatewaySettings) -> None:
    configure_logging(settings.environment, settings.log_level)
    log = structlog.get_logger("gateway")
    app = create_app(settings)
    freeze_startup_objects()
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        access_log=None,
        # Also the deadline for a connection's first request head: a client that connects
        # and stalls (slowloris) is dropped after it.
        keepalive_timeout=settings.idle_timeout,
        loop=new_event_loop(),
        print=lambda _: log.info("gateway_listening", host=settings.host, port=settings.port),
    )


def _name(text: str) -> str:
    name = text.strip()
    if not name or len(name) > MAX_NAME_CHARS or not name.isprintable():
        raise argparse.ArgumentTypeError(f"1 to {MAX_NAME_CHARS} printable characters")
    return name


def _rate(text: str) -> str:
    try:
        limits = parse_limits(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if set(limits.values()) == {None}:
        raise argparse.ArgumentTypeError("give a rate such as 60/min, not only 'off'")
    return text.strip()


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m services.gateway", description=__doc__)
    commands = top.add_subparsers(dest="command")
    commands.add_parser("serve", help="serve the API (the default)")
    keys = commands.add_parser("keys", help="manage API keys").add_subparsers(
        dest="action", required=True
    )
    create = keys.add_parser("create", help="create a key and print it once")
    create.add_argument("--name", required=True, type=_name, help="who or what the key is for")
    create.add_argument(
        "--rate",
        type=_rate,
        help="the key's own limits, e.g. 60/min (every group) or submit=10/min,read=off; "
        "default: RATE_LIMITS",
    )
    create.add_argument(
        "--admin",
        action="store_true",
        help="an operator's key: also opens /dashboard and /api/v1/admin/* (docs/operations.md)",
    )
    keys.add_parser("list", help="list keys: prefix, name, rate, created, status, role")
    revoke = keys.add_parser("revoke", help="revoke a key at once, on every replica")
    revoke.add_argument("prefix", help="the key's prefix, as keys list shows it (ak_...)")
    return top


def _row(key: ApiKey) -> str:
    status = f"revoked {iso(key.revoked_at)}" if key.revoked else "active"
    role = "admin" if key.admin else "client"
    return f"{key.prefix}\t{key.name}\t{key.rate or '-'}\t{iso(key.created_at)}\t{status}\t{role}"


async def run_keys(args: argparse.Namespace, settings: GatewaySettings) -> int:
    redis = create_redis(settings)
    try:
        registry = ApiKeys(redis)
        if args.action == "create":
            record, key = await registry.create(args.name, args.rate, admin=args.admin)
            print(key)
            role = " admin key" if record.admin else ""
            print(
                f"created{role} {record.prefix} ({record.name}); the key above is shown only once",
                file=sys.stderr,
            )
            return 0
        if args.action == "list":
            print("PREFIX\tNAME\tRATE\tCREATED\tSTATUS\tROLE")
            for record in await registry.all():
                print(_row(record))
            return 0
        revoked = await registry.revoke(args.prefix)
        if revoked is None:
            print(f"no key with prefix {args.prefix!r}", file=sys.stderr)
            return 1
        print(f"revoked {revoked.prefix} ({revoked.name}) at {iso(revoked.revoked_at)}")
        return 0
    except RedisError as exc:
        if not storage_full(exc):
            raise
        print(
            "Redis is full (maxmemory reached) and refused the write; nothing was changed. "
            "Free memory or raise maxmemory, then retry.",
            file=sys.stderr,
        )
        return 3
    finally:
        await redis.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = load_or_exit(GatewaySettings)
    if args.command == "keys":
        return asyncio.run(run_keys(args, settings))
    serve(settings)
    return 0
