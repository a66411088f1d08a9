"""Webhooks: Standard Webhooks signatures, retries with backoff, only 2xx, no redirects,
refusal of private addresses at connect time, and deliveries that survive a restart."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from services.validator.metrics import Metrics
from services.validator.settings import ValidatorSettings
from services.validator.webhooks import Webhooks, address_allowed, create_session, delivery_id
from shared import keys
from shared.settings import load_settings
from shared.store import TaskStore
from shared.tasks import Status, output_path, public_view
from tests.validator.conftest import (
    components,
    create_task,
    eventually,
    running,
    validator_settings,
    wait_final,
    write_miners,
)

SECRET = "whsec_" + base64.b64encode(b"a test secret of some length").decode()


@dataclass
class Receiver:
    """A webhook endpoint on loopback answering with scripted statuses (then 200)."""

    statuses: list[int] = field(default_factory=list)
    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append((dict(request.headers), await request.read()))
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 302:
            raise web.HTTPFound("/elsewhere")
        return web.Response(status=status, text="ok")

    async def elsewhere(self, request: web.Request) -> web.Response:
        self.received.append(({"redirected": "yes"}, b""))
        return web.Response(text="ok")


@pytest.fixture
async def receiver(aiohttp_server) -> Receiver:
    recv = Receiver()
    app = web.Application()
    app.router.add_post("/hook", recv.handle)
    app.router.add_post("/elsewhere", recv.elsewhere)
    app.router.add_get("/elsewhere", recv.elsewhere)
    server = await aiohttp_server(app, host="127.0.0.1")
    recv.url = str(server.make_url("/hook"))
    return recv


def verify(headers: dict[str, str], body: bytes, secret: str) -> bool:
    """An independent Standard Webhooks check, as a receiver would write it."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    given = [s.removeprefix("v1,") for s in headers["webhook-signature"].split()]
    return any(hmac.compare_digest(expected, g) for g in given)


async def finished_task(redis, url: str, status: Status = Status.COMPLETED):
    """A task finished directly through the store, with ``url`` as its callback."""
    task = await create_task(redis, callback_url=url)
    store = TaskStore(redis, 3600)
    await store.transition(task.task_id, Status.PROCESSING, expect=[Status.PENDING])
    fields = {"error": "boom"} if status is Status.FAILED else {"result": json.dumps({"x": 1})}
    output = b"summary" if status is Status.COMPLETED else None
    await store.transition(
        task.task_id, status, expect=[Status.PROCESSING], fields=fields, output=output
    )
    return await store.get(task.task_id), output


def make_webhooks(redis, *, allow_private: bool = True, max_attempts: int = 5) -> Webhooks:
    return Webhooks(
        redis,
        create_session(allow_private),
        Metrics(),
        secret=SECRET,
        max_attempts=max_attempts,
        retry_base=0.05,
        retry_max=0.2,
        timeout=2,
        poll_interval=0.05,
        retention=60,
    )


async def deliver_until_settled(hooks: Webhooks, msg_id: str) -> dict[bytes, bytes]:
    async def settled():
        await hooks.deliver_due()
        record = await hooks.redis.hgetall(keys.webhook(msg_id))
        return record if record.get(b"state") != b"pending" else None

    return await eventually(settled)


async def test_validator_posts_a_signed_task_completed_event(
    redis, redis_url, tmp_path, start_miner, validator_wallet, receiver
):
    miner = await start_miner(0)
    task = await create_task(redis, callback_url=receiver.url)
    settings = validator_settings(
        redis_url, write_miners(tmp_path / "m.json", [miner]), webhook_secret=SECRET
    )
    async with running(settings, validator_wallet) as app:
        await wait_final(redis, task.task_id)
        await eventually(lambda: _received(receiver, 1))
        metrics = components(app).metrics
        assert metrics.value("validator_webhook_attempts_total", outcome="delivered") == 1
    [(headers, body)] = receiver.received
    assert headers["webhook-id"] == f"msg_{task.task_id}_completed"
    assert verify(headers, body, SECRET)
    assert not verify(headers, body + b" ", SECRET)
    event = json.loads(body)
    store = TaskStore(redis, 3600)
    final = await store.get(task.task_id)
    assert event["type"] == "task.completed" and event["timestamp"].endswith("Z")
    output = await store.get_output(task.task_id)
    url = output_path(task.task_id)
    assert event["data"] == public_view(final, output, output_url=url)
    assert event["data"]["result"]["miner_uid"] == 0


async def test_failed_task_event(
    redis, redis_url, tmp_path, start_miner, validator_wallet, receiver
):
    flaky = await start_miner(0, "flaky", failure_rate=1.0)
    task = await create_task(redis, callback_url=receiver.url)
    settings = validator_settings(redis_url, write_miners(tmp_path / "m.json", [flaky]))
    async with running(settings, validator_wallet):
        await wait_final(redis, task.task_id)
        await eventually(lambda: _received(receiver, 1))
    event = json.loads(receiver.received[0][1])
    assert event["type"] == "task.failed"
    assert event["data"]["status"] == "failed" and "http_500" in event["data"]["error"]


async def test_retries_with_backoff_until_a_2xx(redis, receiver):
    receiver.statuses = [500, 404, 204]
    task, output = await finished_task(redis, receiver.url)
    hooks = make_webhooks(redis)
    assert await hooks.enqueue(task, output)
    assert not await hooks.enqueue(task, output)  # same event again: already queued
    msg_id = delivery_id(task.task_id, Status.COMPLETED)
    record = await deliver_until_settled(hooks, msg_id)
    await hooks.session.close()
    assert record[b"state"] == b"delivered" and record[b"attempts"] == b"3"
    assert len(receiver.received) == 3
    # One webhook-id across retries; each attempt carries its own valid signature.
    assert {h["webhook-id"] for h, _ in receiver.received} == {msg_id}
    assert all(verify(h, b, SECRET) for h, b in receiver.received)
    assert [hooks.backoff(n) for n in (1, 2, 3, 4)] == [0.05, 0.2, 0.2, 0.2]
    assert await redis.zscore(keys.WEBHOOK_QUEUE, msg_id) is None


async def test_gives_up_after_max_attempts_and_never_follows_redirects(redis, receiver):
    receiver.statuses = [302, 302, 302]
    task, output = await finished_task(redis, receiver.url, Status.FAILED)
    hooks = make_webhooks(redis, max_attempts=3)
    await hooks.enqueue(task, output)
    record = await deliver_until_settled(hooks, delivery_id(task.task_id, Status.FAILED))
    await hooks.session.close()
    assert record[b"state"] == b"gave_up" and record[b"attempts"] == b"3"
    assert len(receiver.received) == 3
    assert all("redirected" not in h for h, _ in receiver.received)
    assert hooks.metrics.value("validator_webhook_attempts_total", outcome="retry") == 2


async def test_default_schedule_spans_ten_minutes_over_five_attempts(redis):
    settings = load_settings(ValidatorSettings, {})
    hooks = make_webhooks(redis)
    hooks.retry_base, hooks.retry_max = settings.webhook_retry_base, settings.webhook_retry_max
    waits = [hooks.backoff(n) for n in range(1, settings.webhook_max_attempts)]
    assert settings.webhook_max_attempts >= 5 and sum(waits) >= 600
    await hooks.session.close()


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "0.0.0.0",
     "100.100.100.200", "::1", "fe80::1", "fd00:ec2::254", "::ffff:127.0.0.1", "224.0.0.1"],
)  # fmt: skip
def test_non_public_addresses_are_not_allowed(host):
    assert not address_allowed(host)


@pytest.mark.parametrize("host", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(host):
    assert address_allowed(host)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_private_targets_are_refused_at_connect_time(redis, receiver, host):
    url = receiver.url.replace("127.0.0.1", host)
    task, output = await finished_task(redis, url)
    hooks = make_webhooks(redis, allow_private=False)
    await hooks.enqueue(task, output)
    record = await deliver_until_settled(hooks, delivery_id(task.task_id, Status.COMPLETED))
    await hooks.session.close()
    assert record[b"state"] == b"refused" and record[b"attempts"] == b"1"
    assert receiver.received == []


async def test_queued_deliveries_survive_a_restart(redis, receiver):
    task, output = await finished_task(redis, receiver.url)
    before = make_webhooks(redis)
    await before.enqueue(task, output)
    await before.session.close()  # the replica goes away before delivering
    after = make_webhooks(redis)
    record = await deliver_until_settled(after, delivery_id(task.task_id, Status.COMPLETED))
    await after.session.close()
    assert record[b"state"] == b"delivered" and len(receiver.received) == 1


async def _received(receiver: Receiver, n: int) -> bool:
    return len(receiver.received) >= n
