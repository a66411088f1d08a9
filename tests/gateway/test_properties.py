"""Property-based tests (hypothesis) of the submission rules.

Each example is judged twice: by the gateway, and by an independent statement of the
documented rules (docs/api.md). A request the rules reject must get a 4xx with the error
shape and leave nothing in Redis; one they accept must get a 202 and be stored as sent.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.gateway.state import STORE
from shared import keys

from .conftest import assert_nothing_stored, audio_form

ALLOWED = ("en", "fr", "yue")
MAX_CHARS = {"/api/v1/tts": 20, "/api/v1/summarization": 30}
PRIORITIES = ("urgent", "high", "normal", "low")
MISSING = object()  # the field is left out of the request

EXAMPLES = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

whitespace = st.text(st.sampled_from(" \t\n\r\x0b\x0c\x1c\x85\xa0\u2028\u3000"), max_size=4)
texts = st.one_of(
    st.text(max_size=35),
    whitespace,
    st.builds(
        lambda pad, word, tail: pad + word + tail, whitespace, st.text(max_size=30), whitespace
    ),
    st.integers(),
    st.none(),
    st.lists(st.text(max_size=3), max_size=2),
    st.just(MISSING),
)
languages = st.one_of(
    st.sampled_from(ALLOWED),
    st.sampled_from(["EN", " en", "en ", "", "xx", "de", "fr-FR", "en,fr"]),
    st.text(max_size=4),
    st.integers(),
    st.none(),
    st.just(MISSING),
)
priorities = st.one_of(
    st.sampled_from(PRIORITIES),
    st.sampled_from(["URGENT", "Normal", " low", "", "asap", "0"]),
    st.text(max_size=8),
    st.integers(min_value=0, max_value=4),
    st.none(),
    st.just(MISSING),
)
label = st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True)
hosts = st.one_of(
    st.builds(lambda a, b: f"{a}.{b}", label, st.from_regex(r"[a-z]{2,6}", fullmatch=True)),
    st.sampled_from(["localhost", "127.0.0.1", "[::1]", "my-host.example.com"]),
)
good_urls = st.builds(
    lambda scheme, host, port, path: f"{scheme}://{host}{port}{path}",
    st.sampled_from(["http", "https"]),
    hosts,
    st.sampled_from(["", ":8080", ":1"]),
    st.sampled_from(["", "/", "/hook", "/a/b?x=1&y=2#frag"]),
)
bad_urls = st.one_of(
    st.sampled_from(
        [
            "",
            "/relative/path",
            "example.com/hook",
            "ftp://example.com/x",
            "javascript:alert(1)",
            "mailto:a@example.com",
            "http://",
            "http:// example.com",
            "https//example.com",
        ]
    ),
    good_urls.map(lambda url: url + "/" + "a" * 2048),  # over 2048 characters
    st.integers(),
    st.lists(good_urls, min_size=1, max_size=1),
)
callbacks = st.one_of(
    good_urls.map(lambda u: ("ok", u)),
    bad_urls.map(lambda u: ("bad", u)),
    st.just(("ok", None)),
    st.just(("ok", MISSING)),
)


def rules_accept(path: str, body: dict[str, Any], callback_ok: bool) -> bool:
    """docs/api.md, restated: what a valid TTS or summarization body is."""
    text = body.get("text", MISSING)
    language = body.get("source_language", MISSING)
    priority = body.get("priority", MISSING)
    return (
        set(body) <= {"text", "source_language", "priority", "callback_url"}
        and isinstance(text, str)
        and text.strip() != ""
        and len(text) <= MAX_CHARS[path]
        and (language is MISSING or language in ALLOWED)
        and (priority is MISSING or priority in PRIORITIES)
        and callback_ok
    )


@pytest.fixture
async def gateway(make_gateway, redis):
    return await make_gateway(
        tts_max_chars=MAX_CHARS["/api/v1/tts"],
        summarization_max_chars=MAX_CHARS["/api/v1/summarization"],
        allowed_languages=",".join(ALLOWED),
        rate_limits="off",
    )


async def _assert_refused(resp, redis) -> None:
    assert 400 <= resp.status < 500
    body = await resp.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "field"}
    assert isinstance(body["error"]["code"], str) and body["error"]["message"]
    await assert_nothing_stored(redis)


@EXAMPLES
@given(
    path=st.sampled_from(sorted(MAX_CHARS)),
    text=texts,
    language=languages,
    priority=priorities,
    callback=callbacks,
    extra=st.sampled_from([MISSING, "voice", "Text"]),
)
async def test_json_submissions_follow_the_documented_rules(
    gateway, redis, path, text, language, priority, callback, extra
):
    await redis.flushall()
    verdict, url = callback
    fields = {"text": text, "source_language": language, "priority": priority}
    body = {k: v for k, v in {**fields, "callback_url": url}.items() if v is not MISSING}
    if extra is not MISSING:
        body[extra] = "x"
    resp = await gateway.post(path, json=body)
    if not rules_accept(path, body, verdict == "ok"):
        assert resp.status == 400
        await _assert_refused(resp, redis)
        return
    assert resp.status == 202, await resp.text()
    answer = await resp.json()
    task = await redis.hgetall(keys.task(answer["task_id"]))
    assert await redis.get(keys.task_input(answer["task_id"])) == text.encode()
    assert task[b"language"].decode() == body.get("source_language", "en")
    assert task[b"priority"].decode() == body.get("priority", "normal")
    assert task.get(b"callback_url", b"").decode() == (body.get("callback_url") or "")


media_types = st.one_of(
    st.sampled_from(
        [
            "application/json",
            "APPLICATION/JSON",
            "application/json; charset=utf-8",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
            "application/ld+json",
        ]
    ),
    st.from_regex(r"[a-z]{1,8}/[a-z0-9+.-]{1,12}", fullmatch=True),
)


@EXAMPLES
@given(path=st.sampled_from(sorted(MAX_CHARS)), media_type=media_types)
async def test_json_endpoints_take_only_application_json(gateway, redis, path, media_type):
    await redis.flushall()
    data = json.dumps({"text": "hello"}).encode()
    resp = await gateway.post(path, data=data, headers={"Content-Type": media_type})
    if media_type.split(";")[0].strip().lower() == "application/json":
        assert resp.status == 202
        return
    assert resp.status == 415
    await _assert_refused(resp, redis)


AUDIO_HEADS = {
    "flac": b"fLaC\x00\x00\x00\x22",
    "ogg": b"OggS\x00\x02",
    "m4a": b"\x00\x00\x00\x20ftypM4A \x00\x00\x00\x00",
    "webm": b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81",
    "mp3": b"ID3\x04\x00\x00\x00\x00\x00\x21",
}
MAGIC = (b"RIFF", b"RF64", b"fLaC", b"OggS", b"\x1a\x45\xdf\xa3", b"ID3")


def not_audio(data: bytes) -> bool:
    """Bytes that start like none of the accepted containers (nor an MPEG frame)."""
    return (
        bool(data) and not data.startswith(MAGIC) and data[:1] != b"\xff" and data[4:8] != b"ftyp"
    )


@EXAMPLES
@given(
    audio=st.one_of(
        st.tuples(st.just("ok"), st.sampled_from(sorted(AUDIO_HEADS)), st.binary(max_size=64)),
        st.tuples(st.just("wav"), st.just(""), st.binary(max_size=64)),
        st.tuples(
            st.just("junk"), st.just(""), st.binary(min_size=1, max_size=80).filter(not_audio)
        ),
        st.just(("empty", "", b"")),
    ),
    language=st.sampled_from([*ALLOWED, "EN", "zz", ""]),
    priority=st.sampled_from([*PRIORITIES, "Low", "soon"]),
)
async def test_uploads_are_judged_by_their_content(gateway, redis, wav, audio, language, priority):
    await redis.flushall()
    kind, head, tail = audio
    data = {"ok": AUDIO_HEADS.get(head, b"") + tail, "wav": wav + tail}.get(kind, tail)
    form = audio_form(data, source_language=language, priority=priority)
    resp = await gateway.post("/api/v1/transcription", data=form)
    if kind in ("ok", "wav") and language in ALLOWED and priority in PRIORITIES:
        assert resp.status == 202, await resp.text()
        task_id = (await resp.json())["task_id"]
        assert await gateway.app[STORE].get_input(task_id) == data
        return
    assert resp.status == 400
    await _assert_refused(resp, redis)
    if language in ALLOWED and priority in PRIORITIES:
        code = (await resp.json())["error"]["code"]
        assert code == ("empty_file" if kind == "empty" else "not_audio")
