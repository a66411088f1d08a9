"""Miners competing: the accurate one beats a fast garbage one, scores move the weights, and
chain mode finds miners in a metagraph and sets weights through the SDK boundary."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import bittensor as bt

from services.validator.miners import Miner
from services.validator.minerstats import MinerStats
from services.validator.weights import compute_weights
from shared import keys
from shared.tasks import Status
from tests.validator.conftest import (
    components,
    create_task,
    eventually,
    running,
    validator_settings,
    wait_final,
    write_miners,
)


async def test_accurate_miner_beats_fast_garbage_and_earns_the_weight(
    redis, redis_url, tmp_path, start_miner, validator_wallet
):
    accurate = await start_miner(0, latency=0.2)
    garbage = await start_miner(1, "garbage")
    tasks = [await create_task(redis) for _ in range(4)]
    settings = validator_settings(
        redis_url, write_miners(tmp_path / "m.json", [accurate, garbage]), score_alpha=0.5
    )
    async with running(settings, validator_wallet) as app:
        finals = [await wait_final(redis, t.task_id) for t in tasks]
        weights = await components(app).weights.tick()
    assert all(f.status is Status.COMPLETED for f in finals)
    assert {f.result["miner_uid"] for f in finals} == {0}
    assert all(f.result["accuracy_score"] > 0.2 for f in finals)
    assert all(f.result["model_used"] == "devnet-accurate" for f in finals)
    scores = {k.decode(): float(v) for k, v in (await redis.hgetall(keys.MINER_SCORES)).items()}
    assert scores[accurate.hotkey] > 0.3 > scores[garbage.hotkey]
    assert scores[garbage.hotkey] == 0.0
    assert weights == {0: 1.0, 1: 0.0}


async def test_running_scores_move_the_weights(
    redis, redis_url, tmp_path, start_miner, validator_wallet
):
    first = await start_miner(0)
    second = await start_miner(1, "noisy", wer=0.6)
    miners_file = write_miners(tmp_path / "m.json", [first, second])
    await redis.hset(keys.MINER_SCORES, mapping={first.hotkey: 0.1, second.hotkey: 0.9})
    listed = [Miner(uid=m.uid, hotkey=m.hotkey, url=m.url) for m in (first, second)]
    before = compute_weights(listed, await MinerStats(redis, 0.5).scores())
    tasks = [await create_task(redis) for _ in range(4)]
    settings = validator_settings(redis_url, miners_file, score_alpha=0.5)
    async with running(settings, validator_wallet) as app:
        for t in tasks:
            await wait_final(redis, t.task_id)
        after = await components(app).weights.tick()
        # The lock keeps a second round (any replica) out until the interval ends.
        assert await components(app).weights.tick() is None
    assert before[1] > before[0]
    assert after[0] > after[1]


def neuron(uid: int, hotkey: str, axon: str | None, stake: float) -> bt.MetagraphNeuron:
    zero = bt.Balance.from_tao(0)
    return bt.MetagraphNeuron(
        uid=uid, hotkey=hotkey, coldkey=hotkey, active=True, validator_permit=False,
        last_update=0, block_at_registration=0, rank=0.0, trust=0.0, consensus=0.0,
        incentive=0.0, dividends=0.0, pruning_score=0.0, emission=zero, alpha_stake=zero,
        tao_stake=zero, total_stake=bt.Balance.from_tao(stake), axon=axon, identity=None,
        commitment=None,
    )  # fmt: skip


def metagraph(netuid: int, neurons: list[bt.MetagraphNeuron]) -> bt.Metagraph:
    return bt.Metagraph(
        netuid=netuid, mechid=0, name="audio", symbol="a", block=100, tempo=360, last_step=0,
        blocks_since_last_step=0, owner_hotkey="", owner_coldkey="", network_registered_at=0,
        num_uids=len(neurons), max_uids=256, price=None, moving_price=None, identity=None,
        neurons=neurons, commitments={}, unregistered_commitments={}, raw={},
    )  # fmt: skip


@dataclass
class FakeChain:
    """The ChainClient seam with a metagraph built here; records SetWeights calls."""

    graph: bt.Metagraph
    weight_calls: list[dict[str, Any]] = field(default_factory=list)

    async def metagraph(self, netuid: int) -> bt.Metagraph:
        assert netuid == self.graph.netuid
        return self.graph

    async def set_weights(self, netuid, uids, weights, wallet) -> None:
        intent = bt.SetWeights(netuid=netuid, uids=uids, weights=weights)
        self.weight_calls.append(
            {
                "intent": intent,
                "hotkey": wallet.hotkey.ss58_address,
                "pairs": dict(zip(uids, weights, strict=True)),
            }
        )

    async def close(self) -> None:
        return None


async def test_chain_mode_uses_the_metagraph_and_sets_weights(
    redis, redis_url, start_miner, validator_wallet
):
    good = await start_miner(3)
    bad = await start_miner(4, "garbage")
    graph = metagraph(
        7,
        [
            neuron(0, validator_wallet.hotkey.ss58_address, "127.0.0.1:1", 1000.0),  # ourselves
            neuron(1, "5-no-axon", None, 5.0),
            neuron(3, good.hotkey, good.url.removeprefix("http://"), 10.0),
            neuron(4, bad.hotkey, bad.url.removeprefix("http://"), 2.5),
        ],
    )
    chain = FakeChain(graph)
    tasks = [await create_task(redis) for _ in range(2)]
    settings = validator_settings(redis_url, None, bt_netuid=7)
    assert settings.chain_mode
    async with running(settings, validator_wallet, chain=chain) as app:
        c = components(app)
        assert sorted(m.uid for m in c.registry.miners) == [3, 4]
        finals = [await wait_final(redis, t.task_id) for t in tasks]
        weights = await c.weights.tick()
        stats = await eventually(lambda: _stats_with(redis, "total_stake", "12.5000"))
    assert {f.result["miner_uid"] for f in finals} == {3}
    [call] = chain.weight_calls
    assert call["hotkey"] == validator_wallet.hotkey.ss58_address
    assert call["intent"].netuid == 7 and call["pairs"] == weights
    assert weights[3] > weights[4]
    assert stats[b"total_miners"] == b"2" and stats[b"connectivity"] == b"1.000"


async def _stats_with(redis, field_name: str, value: str):
    stats = await redis.hgetall(keys.NETWORK_STATS)
    return stats if stats.get(field_name.encode()) == value.encode() else None
