"""API keys: 401s, identities, task ownership (404 for others), digests only in Redis."""

from __future__ import annotations

import pytest

from services.gateway.apikeys import ApiKeys
from shared import keys
from shared.tasks import Status

from .conftest import assert_nothing_stored, audio_form

TASKS = "/api/v1/tasks"


async def _error(resp, status: int, code: str) -> None:
    assert resp.status == status
    body = await resp.json()
    assert set(body["error"]) == {"code", "message", "field"}
    assert body["error"]["code"] == code


async def _submit(client, headers: dict[str, str] | None = None, text: str = "hi") -> str:
    resp = await client.post("/api/v1/tts", json={"text": text}, headers=headers or {})
    assert resp.status == 202, await resp.text()
    return (await resp.json())["task_id"]


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def required(make_gateway, redis):
    return await make_gateway(api_keys_required="true")


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_api_key"),
        ({"Authorization": "Bearer ak_00000000_nope"}, "invalid_api_key"),
        ({"X-API-Key": "ak_00000000_nope"}, "invalid_api_key"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "invalid_authorization"),
        ({"Authorization": "Bearer "}, "invalid_authorization"),
        ({"X-API-Key": "k" * 5000}, "invalid_api_key"),
    ],
)
async def test_required_keys_refuse_with_401_and_store_nothing(required, redis, headers, code):
    for method, path in [("POST", "/api/v1/tts"), ("GET", TASKS), ("GET", f"{TASKS}/x")]:
        resp = await required.request(method, path, json={"text": "hi"}, headers=headers)
        await _error(resp, 401, code)
        assert resp.headers["WWW-Authenticate"] == 'Bearer realm="api"'
    await assert_nothing_stored(redis)


async def test_required_keys_leave_probes_docs_and_stats_open(required):
    for path in ("/api/v1/health", "/metrics", "/api/v1/openapi.json", "/api/v1/docs"):
        assert (await required.get(path)).status == 200, path
    assert (await required.get("/api/v1/stats")).status == 200


async def test_a_valid_key_in_either_header_is_accepted(required, redis):
    registry = ApiKeys(redis)
    record, key = await registry.create("ci")
    task_id = await _submit(required, bearer(key))
    assert (await required.get(f"{TASKS}/{task_id}", headers={"X-API-Key": key})).status == 200
    stored = await redis.hget(keys.task(task_id), "owner")
    assert stored == f"key:{record.prefix}".encode() and record.prefix.startswith("ak_")
    # Both headers at once must agree.
    resp = await required.get(TASKS, headers={**bearer(key), "X-API-Key": key + "x"})
    await _error(resp, 401, "invalid_authorization")
    assert (await required.get(TASKS, headers={**bearer(key), "X-API-Key": key})).status == 200


async def test_a_revoked_key_is_refused_at_once(required, redis):
    registry = ApiKeys(redis)
    record, key = await registry.create("leaked")
    task_id = await _submit(required, bearer(key))
    revoked = await registry.revoke(record.prefix)
    assert revoked is not None and revoked.revoked
    await _error(
        await required.get(f"{TASKS}/{task_id}", headers=bearer(key)), 401, "api_key_revoked"
    )
    await _error(
        await required.post("/api/v1/tts", json={"text": "x"}, headers=bearer(key)),
        401,
        "api_key_revoked",
    )
    assert await registry.revoke("ak_unknown") is None


async def test_another_keys_task_is_404_and_never_listed(required, redis, wav):
    registry = ApiKeys(redis)
    _, alice = await registry.create("alice")
    _, bob = await registry.create("bob")
    resp = await required.post("/api/v1/transcription", data=audio_form(wav), headers=bearer(alice))
    alices = (await resp.json())["task_id"]
    bobs = await _submit(required, bearer(bob))
    for path in (f"{TASKS}/{alices}", f"{TASKS}/{alices}/output"):
        resp = await required.get(path, headers=bearer(bob))
        await _error(resp, 404, "task_not_found")
    # The same answer as for an id that never existed: nothing to tell them apart.
    unknown = await required.get(
        f"{TASKS}/00000000-0000-4000-8000-000000000000", headers=bearer(bob)
    )
    other = await required.get(f"{TASKS}/{alices}", headers=bearer(bob))
    assert (await other.json())["error"]["message"].replace(alices, "ID") == (await unknown.json())[
        "error"
    ]["message"].replace("00000000-0000-4000-8000-000000000000", "ID")
    for status in ("", "?status=pending"):
        page = await (await required.get(f"{TASKS}{status}", headers=bearer(bob))).json()
        assert [t["task_id"] for t in page["tasks"]] == [bobs]
        page = await (await required.get(f"{TASKS}{status}", headers=bearer(alice))).json()
        assert [t["task_id"] for t in page["tasks"]] == [alices]


async def test_optional_keys_anonymous_is_the_address_and_a_key_is_still_honoured(client, redis):
    record, key = await ApiKeys(redis).create("optional")
    anonymous = await _submit(client)
    keyed = await _submit(client, {"X-API-Key": key})
    owners = [await redis.hget(keys.task(t), "owner") for t in (anonymous, keyed)]
    assert owners == [b"ip:127.0.0.1", f"key:{record.prefix}".encode()]
    # Each sees only its own: the anonymous caller cannot read the keyed task, and back.
    assert (await client.get(f"{TASKS}/{keyed}")).status == 404
    assert (await client.get(f"{TASKS}/{anonymous}", headers=bearer(key))).status == 404
    listed = await (await client.get(TASKS)).json()
    assert [t["task_id"] for t in listed["tasks"]] == [anonymous]
    # A wrong key is refused even where none is needed.
    await _error(
        await client.post("/api/v1/tts", json={"text": "x"}, headers=bearer("bad")),
        401,
        "invalid_api_key",
    )
    assert await redis.zcard(keys.owner_index(f"key:{record.prefix}", Status.PENDING)) == 1


async def test_redis_holds_digests_and_prefixes_never_a_key(redis):
    registry = ApiKeys(redis)
    created = [await registry.create(f"k{i}", "60/min") for i in range(3)]
    dump = b""
    for name in await redis.keys("*"):
        kind = await redis.type(name)
        if kind == b"hash":
            dump += b" ".join(k + b"=" + v for k, v in (await redis.hgetall(name)).items())
        dump += name
    for record, key in created:
        assert key.encode() not in dump
        assert key.startswith(record.prefix + "_") and len(key) == len(record.prefix) + 44
        assert record.prefix.encode() in dump
    listed = await registry.all()
    assert [(k.prefix, k.name, k.rate) for k in listed] == [
        (r.prefix, f"k{i}", "60/min") for i, (r, _) in enumerate(created)
    ]
    assert len({r.prefix for r, _ in created}) == 3
