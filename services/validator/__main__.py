"""``python -m services.validator``: check the wallet, the miners and the chain, then run.

Start-up problems (bad settings, no wallet, unreachable chain, unreadable MINERS_FILE) end
the process with one line on stderr and a non-zero status, never a traceback. Redis is not
a start-up condition: the validator waits for it. SIGTERM or SIGINT stops it gracefully.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

import bittensor as bt
from aiohttp import web

from services.validator.app import create_app, miner_source
from services.validator.miners import MinerSourceError, SubtensorChain
from services.validator.settings import ValidatorSettings
from shared.logging import configure_logging, get_logger
from shared.settings import load_or_exit

log = get_logger("validator")


class StartupError(RuntimeError):
    """A condition the validator cannot start without; the message is one line."""


def open_wallet(settings: ValidatorSettings) -> Any:
    """The wallet whose hotkey signs miner requests and weights; StartupError if absent."""
    wallet = bt.Wallet(settings.bt_wallet_name, settings.bt_wallet_hotkey, settings.bt_wallet_path)
    where = (
        f"BT_WALLET_PATH={settings.bt_wallet_path} BT_WALLET_NAME={settings.bt_wallet_name}"
        f" BT_WALLET_HOTKEY={settings.bt_wallet_hotkey}"
    )
    if not wallet.hotkey_file.exists_on_device():
        raise StartupError(f"wallet hotkey not found ({where})")
    try:
        wallet.hotkey.ss58_address  # noqa: B018 - loads and decodes the key file now
    except (OSError, ValueError, bt.BittensorError) as exc:
        raise StartupError(f"wallet hotkey unreadable ({where}): {exc}") from None
    return wallet


async def serve(settings: ValidatorSettings, wallet: Any) -> None:
    """Preflight the miner source, then run until SIGTERM/SIGINT."""
    chain = None
    if settings.chain_mode:
        try:
            chain = await SubtensorChain.connect(settings.bt_network, settings.chain_timeout)
        except MinerSourceError as exc:
            raise StartupError(str(exc)) from None
    try:
        miners = await miner_source(settings, wallet.hotkey.ss58_address, chain).load()
    except MinerSourceError as exc:
        if chain is not None:
            await chain.close()
        raise StartupError(str(exc)) from None
    log.info("miners_found", count=len(miners), mode="chain" if chain else "static")
    runner = web.AppRunner(create_app(settings, wallet=wallet, chain=chain), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "0.0.0.0", settings.validator_port)
        try:
            await site.start()
        except OSError as exc:
            raise StartupError(f"VALIDATOR_PORT {settings.validator_port}: {exc}") from None
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        log.info("shutting_down", grace=settings.shutdown_grace)
    finally:
        await runner.cleanup()
        if chain is not None:
            await chain.close()


def main() -> None:
    settings = load_or_exit(ValidatorSettings)
    configure_logging(settings.environment, settings.log_level)
    try:
        wallet = open_wallet(settings)
        asyncio.run(serve(settings, wallet))
    except StartupError as exc:
        print(f"validator: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
