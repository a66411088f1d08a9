"""X-Forwarded-For is believed only from TRUSTED_PROXIES: the anonymous identity it gives."""

from __future__ import annotations

import pytest

from shared import keys
from shared.settings import SettingsError

from .conftest import gateway_settings


@pytest.mark.parametrize(
    ("trusted", "forwarded", "owner"),
    [
        ("", None, "ip:127.0.0.1"),
        # An untrusted peer cannot name another client.
        ("", "6.6.6.6", "ip:127.0.0.1"),
        ("10.0.0.0/8", "6.6.6.6", "ip:127.0.0.1"),
        # The loopback peer is a trusted proxy: its hop is believed.
        ("127.0.0.1", "6.6.6.6", "ip:6.6.6.6"),
        # The rightmost untrusted hop is the client; what it prepended is ignored.
        ("127.0.0.1", "1.2.3.4, 6.6.6.6", "ip:6.6.6.6"),
        ("127.0.0.1,10.0.0.0/8", "1.2.3.4, 6.6.6.6, 10.1.1.1", "ip:6.6.6.6"),
        # Every hop trusted: the leftmost is as far as we can see.
        ("127.0.0.0/8,10.0.0.0/8", "10.2.2.2, 10.1.1.1", "ip:10.2.2.2"),
        # Ports and brackets some proxies add; IPv4-mapped IPv6 is the IPv4 address.
        ("127.0.0.1", "6.6.6.6:4711", "ip:6.6.6.6"),
        ("127.0.0.1", "::ffff:6.6.6.6", "ip:6.6.6.6"),
        # IPv6 callers are counted per /64.
        ("127.0.0.1", "[2001:db8:1:2:3:4:5:6]:443", "ip:2001:db8:1:2::/64"),
        # A malformed hop ends the chain at the last trusted proxy.
        ("127.0.0.1,10.0.0.0/8", "6.6.6.6, unknown, 10.1.1.1", "ip:10.1.1.1"),
        ("127.0.0.1", "", "ip:127.0.0.1"),
    ],
)
async def test_anonymous_owner(make_gateway, redis, trusted, forwarded, owner):
    client = await make_gateway(trusted_proxies=trusted)
    headers = {"X-Forwarded-For": forwarded} if forwarded is not None else {}
    resp = await client.post("/api/v1/tts", json={"text": "hi"}, headers=headers)
    assert resp.status == 202
    task_id = (await resp.json())["task_id"]
    assert (await redis.hget(keys.task(task_id), "owner")).decode() == owner


async def test_several_forwarded_headers_are_one_chain(make_gateway, redis):
    client = await make_gateway(trusted_proxies="127.0.0.1,10.0.0.0/8")
    headers = [("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "10.1.1.1")]
    resp = await client.post("/api/v1/tts", json={"text": "hi"}, headers=headers)
    task_id = (await resp.json())["task_id"]
    assert await redis.hget(keys.task(task_id), "owner") == b"ip:6.6.6.6"


def test_bad_proxy_lists_stop_the_gateway(redis_url):
    with pytest.raises(SettingsError, match=r"^TRUSTED_PROXIES:"):
        gateway_settings(redis_url, trusted_proxies="10.0.0.0/8,proxy.internal")
