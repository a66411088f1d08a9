"""Where the miners come from: a static JSON file or the chain's metagraph, kept fresh.

Both sources give the same :class:`Miner` records. The chain is reached through the
:class:`ChainClient` protocol so that tests inject a metagraph built in the test, while
production uses :class:`SubtensorChain` (the bittensor SDK).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import bittensor as bt

from shared.logging import get_logger
from shared.periodic import every

log = get_logger("validator.miners")


class MinerSourceError(RuntimeError):
    """The miner list could not be read; the message is one line."""


@dataclass(frozen=True)
class Miner:
    """One miner the validator can query."""

    uid: int
    hotkey: str
    url: str
    stake: float = 0.0


class ChainClient(Protocol):
    """What the validator needs from the chain: the metagraph and setting weights."""

    async def metagraph(self, netuid: int) -> Any: ...

    async def set_weights(
        self, netuid: int, uids: list[int], weights: list[float], wallet: Any
    ) -> None: ...

    async def close(self) -> None: ...


class SubtensorChain:
    """:class:`ChainClient` over ``bt.Subtensor`` (async mode), one connection per process."""

    def __init__(self, client: Any, timeout: float) -> None:
        self._client = client
        self._timeout = timeout

    @classmethod
    async def connect(cls, network: str, wait: float) -> SubtensorChain:
        """Connect to ``network``; raises MinerSourceError in one line when unreachable."""
        try:
            client = await asyncio.wait_for(_open(network), wait)
        except (bt.BittensorError, OSError, TimeoutError) as exc:
            raise MinerSourceError(f"cannot reach chain {network!r}: {exc}") from None
        return cls(client, wait)

    async def metagraph(self, netuid: int) -> Any:
        return await asyncio.wait_for(self._client.subnets.metagraph(netuid), self._timeout)

    async def set_weights(
        self, netuid: int, uids: list[int], weights: list[float], wallet: Any
    ) -> None:
        intent = bt.SetWeights(netuid=netuid, uids=uids, weights=weights)
        result = await asyncio.wait_for(self._client.execute(intent, wallet), self._timeout)
        result.raise_for_failure()

    async def close(self) -> None:
        await self._client.close()


async def _open(network: str) -> Any:
    """The SDK's async client: awaiting a ``bt.Subtensor`` connects it on this loop."""
    return await bt.Subtensor(network)


class MinerSource(Protocol):
    async def load(self) -> list[Miner]: ...


class StaticMiners:
    """MINERS_FILE: a JSON list of {"uid", "hotkey", "url"}, re-read on every sync."""

    def __init__(self, path: str | Path, own_hotkey: str) -> None:
        self.path = Path(path)
        self.own_hotkey = own_hotkey

    async def load(self) -> list[Miner]:
        try:
            raw = json.loads(await asyncio.to_thread(self.path.read_text))
        except (OSError, ValueError) as exc:
            raise MinerSourceError(f"MINERS_FILE {self.path}: {exc}") from None
        if not isinstance(raw, list):
            raise MinerSourceError(f"MINERS_FILE {self.path}: expected a JSON list")
        miners = []
        for i, item in enumerate(raw):
            try:
                miner = Miner(uid=int(item["uid"]), hotkey=str(item["hotkey"]), url=item["url"])
            except (KeyError, TypeError, ValueError) as exc:
                raise MinerSourceError(f"MINERS_FILE {self.path}: entry {i}: {exc!r}") from None
            if urlsplit(miner.url).scheme not in ("http", "https"):
                raise MinerSourceError(f"MINERS_FILE {self.path}: entry {i}: not an http(s) url")
            if miner.hotkey != self.own_hotkey:
                miners.append(miner)
        return miners


class ChainMiners:
    """Miners from the metagraph: neurons serving an axon, other than ourselves."""

    def __init__(self, chain: ChainClient, netuid: int, own_hotkey: str) -> None:
        self.chain = chain
        self.netuid = netuid
        self.own_hotkey = own_hotkey

    async def load(self) -> list[Miner]:
        try:
            metagraph = await self.chain.metagraph(self.netuid)
        except (bt.BittensorError, OSError, TimeoutError) as exc:
            raise MinerSourceError(f"metagraph of subnet {self.netuid}: {exc}") from None
        return [
            Miner(uid=n.uid, hotkey=n.hotkey, url=f"http://{n.axon}", stake=_amount(n.total_stake))
            for n in metagraph.neurons
            if n.axon and n.hotkey != self.own_hotkey
        ]


def _amount(balance: Any) -> float:
    """A stake as a number in its own unit (bt.Balance or anything float-like)."""
    amount = getattr(balance, "amount", balance)
    return float(amount or 0.0)


class MinerRegistry:
    """The current miner list, refreshed every METAGRAPH_SYNC_INTERVAL by :meth:`run`."""

    def __init__(self, source: MinerSource, interval: float) -> None:
        self.source = source
        self.interval = interval
        self.miners: list[Miner] = []
        self.last_sync: float | None = None

    async def sync(self) -> list[Miner]:
        """Reload the list; on failure keep the previous one (and raise)."""
        miners = await self.source.load()
        changed = {m.hotkey for m in miners} != {m.hotkey for m in self.miners}
        self.miners = miners
        self.last_sync = time.time()
        if changed:
            log.info("miners_synced", count=len(miners), uids=[m.uid for m in miners])
        return miners

    def by_hotkey(self) -> dict[str, Miner]:
        return {m.hotkey: m for m in self.miners}

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh until ``stop`` is set; a failed refresh is logged and retried next time."""
        async for _ in every(self.interval, stop):
            try:
                await self.sync()
            except MinerSourceError as exc:
                log.warning("miner_sync_failed", error=str(exc), kept=len(self.miners))
