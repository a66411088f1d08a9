"""Throwaway, password-less bittensor wallets for local runs and tests (never for real funds)."""

from __future__ import annotations

from pathlib import Path

import bittensor as bt


def ensure_wallet(path: Path | str, name: str, hotkey: str = "default") -> bt.Wallet:
    """Open the wallet at ``path``/``name`` with ``hotkey``, creating its keys if missing."""
    wallet = bt.Wallet(name, hotkey, str(path))
    if not wallet.coldkeypub_file.exists_on_device():
        wallet.create_new_coldkey(use_password=False, overwrite=False, suppress=True)
    if not wallet.hotkey_file.exists_on_device():
        wallet.create_new_hotkey(use_password=False, overwrite=False, suppress=True)
    return wallet
