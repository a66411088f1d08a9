"""One-shot set-up for the Compose ``devnet`` profile (SIMULATION ONLY, never real funds).

Creates throwaway, password-less wallets for the validator and for each simulated miner
under ``<dir>/wallets`` (kept if they already exist) and writes ``<dir>/miners.json``, the
static miner list the validator reads through MINERS_FILE. The miners' URLs are the
Compose service names, given on the command line::

    python -m devnet.init --dir /devnet \\
        --miner accurate=http://miner-accurate:9100 --miner noisy=http://miner-noisy:9100

Wallet names follow ``make run`` (devnet/stack.py): ``devnet-validator`` and
``devnet-miner-<profile>``, hotkey ``default``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from devnet.wallets import ensure_wallet

VALIDATOR_WALLET = "devnet-validator"


def miner_wallet(profile: str) -> str:
    return f"devnet-miner-{profile}"


def parse_miner(spec: str) -> tuple[str, str]:
    """``profile=url`` -> (profile, url)."""
    profile, sep, url = spec.partition("=")
    if not sep or not profile or not url.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"expected PROFILE=http://host:port, got {spec!r}")
    return profile, url


def initialise(directory: Path, miners: list[tuple[str, str]]) -> list[dict[str, object]]:
    """Create the wallets and ``miners.json`` under ``directory``; return the listing."""
    wallets = directory / "wallets"
    ensure_wallet(wallets, VALIDATOR_WALLET)
    listing: list[dict[str, object]] = []
    for uid, (profile, url) in enumerate(miners, start=1):
        wallet = ensure_wallet(wallets, miner_wallet(profile))
        listing.append({"uid": uid, "hotkey": wallet.hotkey.ss58_address, "url": url})
    (directory / "miners.json").write_text(json.dumps(listing, indent=2) + "\n")
    return listing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True, help="shared devnet volume")
    parser.add_argument(
        "--miner",
        dest="miners",
        type=parse_miner,
        action="append",
        required=True,
        help="PROFILE=URL of one simulated miner (repeat)",
    )
    args = parser.parse_args(argv)
    listing = initialise(args.dir, args.miners)
    for entry in listing:
        print(f"miner uid={entry['uid']} {entry['url']} hotkey={entry['hotkey']}")
    print(f"wrote {args.dir / 'miners.json'}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
