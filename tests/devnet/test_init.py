"""devnet.init: the Compose devnet one-shot (throwaway wallets + miners.json)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import bittensor as bt
import pytest

from devnet import init
from tests.deploy.deployfiles import DEPLOY, load_compose


def test_writes_miners_json_with_the_wallets_hotkeys(tmp_path: Path) -> None:
    miners = [("accurate", "http://miner-accurate:9100"), ("noisy", "http://miner-noisy:9100")]
    assert init.main(["--dir", str(tmp_path), *(f"--miner={p}={u}" for p, u in miners)]) == 0
    listing = json.loads((tmp_path / "miners.json").read_text())
    assert [(m["uid"], m["url"]) for m in listing] == [(1, miners[0][1]), (2, miners[1][1])]
    for (profile, _), entry in zip(miners, listing, strict=True):
        wallet = bt.Wallet(f"devnet-miner-{profile}", "default", str(tmp_path / "wallets"))
        assert entry["hotkey"] == wallet.hotkey.ss58_address
    validator = bt.Wallet("devnet-validator", "default", str(tmp_path / "wallets"))
    assert validator.hotkey_file.exists_on_device()
    # A second run keeps the wallets: the hotkeys in miners.json do not change.
    init.initialise(tmp_path, miners)
    assert json.loads((tmp_path / "miners.json").read_text()) == listing


@pytest.mark.parametrize("spec", ["accurate", "=http://x:1", "accurate=ftp://x", "accurate="])
def test_rejects_a_malformed_miner(spec: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        init.parse_miner(spec)


def test_compose_runs_it_with_the_devnet_volume_and_the_validator_reads_its_output() -> None:
    services = load_compose()["services"]
    one_shot = services["devnet-init"]
    assert one_shot["command"][:4] == ["python", "-m", "devnet.init", "--dir=/devnet"]
    assert one_shot["volumes"] == ["devnet:/devnet"]
    devnet_env = (DEPLOY / "devnet.env").read_text()
    assert "MINERS_FILE=/devnet/miners.json" in devnet_env
    assert f"BT_WALLET_NAME={init.VALIDATOR_WALLET}" in devnet_env
