"""Retries: failed attempts are retried with fresh signatures, up to MAX_ATTEMPTS."""

from __future__ import annotations

from devnet.miner import leading_sentences
from shared import keys
from shared.tasks import Status
from tests.validator.conftest import (
    ARTICLE,
    RunningMiner,
    attempts,
    create_task,
    running,
    validator_settings,
    wait_final,
    write_miners,
)


async def test_failing_miner_fails_the_task_after_three_signed_attempts(
    redis, redis_url, tmp_path, start_miner, validator_wallet
):
    flaky = await start_miner(0, "flaky", failure_rate=1.0)
    task = await create_task(redis)
    settings = validator_settings(redis_url, write_miners(tmp_path / "m.json", [flaky]))
    async with running(settings, validator_wallet):
        final = await wait_final(redis, task.task_id)
    assert final.status is Status.FAILED
    assert final.attempts == 3
    assert "after 3 attempts" in final.error and "http_500 x3" in final.error
    assert [a["attempt"] for a in await attempts(redis, task.task_id)] == [1, 2, 3]
    # Every retry passed the miner's btauth check with a nonce of its own: a resent
    # signature would have been rejected as a replay.
    seen = [e for e in flaky.activity.accepted if e["task_id"] == task.task_id]
    assert len(seen) == 3
    assert len({e["nonce"] for e in seen}) == 3
    assert flaky.activity.rejected == 0


async def test_timeouts_are_failed_attempts(
    redis, redis_url, tmp_path, start_miner, validator_wallet
):
    slow = await start_miner(0, "slow", slow_extra=2.5)
    task = await create_task(redis)
    settings = validator_settings(
        redis_url, write_miners(tmp_path / "m.json", [slow]), task_timeout=1
    )
    async with running(settings, validator_wallet):
        final = await wait_final(redis, task.task_id)
    assert final.status is Status.FAILED
    assert "timeout x3" in final.error
    records = await attempts(redis, task.task_id)
    assert [r["responses"][0]["error"] for r in records] == ["timeout"] * 3


async def test_a_retry_goes_to_a_miner_not_yet_asked(
    redis, redis_url, tmp_path, start_miner, validator_wallet
):
    good = await start_miner(1)
    # Nothing listens on port 9 of loopback: the connection is refused.
    dead = RunningMiner(0, (await start_miner(0)).hotkey, "http://127.0.0.1:9", good.app)
    # The dead miner has the better running score, so it is asked first.
    await redis.hset(keys.MINER_SCORES, mapping={dead.hotkey: 0.9, good.hotkey: 0.1})
    task = await create_task(redis)
    settings = validator_settings(
        redis_url, write_miners(tmp_path / "m.json", [dead, good]), max_miners_per_request=1
    )
    async with running(settings, validator_wallet):
        final = await wait_final(redis, task.task_id)
    assert final.status is Status.COMPLETED
    assert final.attempts == 2 and final.result["miner_uid"] == 1
    first, second = await attempts(redis, task.task_id)
    assert first["responses"][0]["error"] == "connection" and first["winner"] is None
    assert second["winner"] == 1
    output = await redis.get(keys.task_output(task.task_id))
    assert output == leading_sentences(ARTICLE).encode()
