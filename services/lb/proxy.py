"""POST /v1/audio/transcriptions (and /transcribe): stream the request to the least-loaded
healthy instance and stream its answer back, byte for byte, minus hop-by-hop headers.

A large body with a Content-Length is relayed by ``splice(2)`` on Linux, socket to pipe to
socket, once the headers are out (services/lb/splice.py): no copy through Python. Any
other body is handed to the client session as the server's own StreamReader, which aiohttp
writes out chunk by chunk as it arrives: no buffering and no per-chunk Python code of
ours. Nothing is decompressed or re-encoded in either direction.

Failover: a connection that cannot be opened (refused, connect timeout) happens before
any body byte has been read from the client, so the request moves to the next-best
instance, each instance at most once. Any later failure answers 502 (or 504 past
REQUEST_TIMEOUT); once the answer has started, the client connection is cut instead, so
a truncated answer can never look complete.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable

import aiohttp
import structlog
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from services.lb import metrics as outcome
from services.lb import splice
from services.lb.health import record_failure
from services.lb.instances import Instance
from services.lb.routing import choose
from services.lb.state import METRICS, POOL, SESSION, SETTINGS
from shared.http import REQUEST_ID_HEADER, REQUEST_ID_KEY, json_error

# Bound lazily, at first use: after configure_logging has run.
log = structlog.get_logger(component="lb.proxy")

#: Where every transcription goes upstream; /transcribe is only the LB's legacy alias.
UPSTREAM_PATH = "/v1/audio/transcriptions"

#: RFC 9110 §7.6.1 connection-specific headers (plus the common non-standard ones).
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
#: Request headers about the hop to the LB: Host names the LB, and aiohttp has already
#: answered Expect: 100-continue itself.
CLIENT_HOP_ONLY = frozenset({"host", "expect"})
#: Headers aiohttp's client adds when absent; a pass-through proxy must not add them
#: (an Accept-Encoding the client never sent would get it a compressed answer).
NO_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")


def end_to_end(
    headers: CIMultiDictProxy[str] | CIMultiDict[str], drop: Iterable[str] = ()
) -> CIMultiDict[str]:
    """``headers`` without hop-by-hop ones, those Connection names, and ``drop``."""
    listed = {
        token.strip().lower()
        for value in headers.getall("Connection", ())
        for token in value.split(",")
    }
    skip = HOP_BY_HOP | listed | frozenset(drop)
    return CIMultiDict((name, value) for name, value in headers.items() if name.lower() not in skip)


def upstream_headers(request: web.Request) -> CIMultiDict[str]:
    """The client's end-to-end headers, plus X-Forwarded-For and the request id."""
    headers = end_to_end(request.headers, CLIENT_HOP_ONLY)
    if request.remote:
        chain = [*headers.popall("X-Forwarded-For", []), request.remote]
        headers["X-Forwarded-For"] = ", ".join(chain)
    headers[REQUEST_ID_HEADER] = request[REQUEST_ID_KEY]
    return headers


def upstream_url(instance: Instance, request: web.Request) -> URL:
    """The instance's transcription URL, with the client's query string as it came."""
    target = instance.url + UPSTREAM_PATH
    if query := request.rel_url.raw_query_string:
        target = f"{target}?{query}"
    return URL(target, encoded=True)


def unavailable(request: web.Request, message: str, code: str) -> web.Response:
    """503 with Retry-After: the next health round may bring an instance back."""
    retry_after = max(1, math.ceil(request.app[SETTINGS].health_check_interval))
    return json_error(503, code, message, **{"Retry-After": str(retry_after)})


async def transcribe(request: web.Request) -> web.StreamResponse:
    """Route to the least-loaded healthy instance; fail over while nothing has been sent."""
    pool = request.app[POOL]
    tried: list[Instance] = []
    while (instance := choose(pool, tried)) is not None:
        tried.append(instance)
        # A first choice is routine: at DEBUG, so INFO costs one log line per request (the
        # shared "request" line), not two. A failover is worth seeing at INFO.
        (log.info if len(tried) > 1 else log.debug)(
            "routed",
            instance=instance.url,
            load=instance.load,
            active_jobs=instance.active_jobs,
            in_flight=instance.in_flight,
            attempt=len(tried),
            request_id=request[REQUEST_ID_KEY],
        )
        instance.dispatched()
        try:
            response = await _forward(request, instance)
        finally:
            instance.finished()
        if response is not None:
            if request.get(splice.ENGAGED):
                # The body went past the HTTP parser: the connection cannot carry another.
                response.force_close()
            return response
    if tried:
        log.error("all_instances_unreachable", tried=[i.url for i in tried])
        return unavailable(
            request, "No WhisperX instance accepted the connection", "instances_unreachable"
        )
    log.error("no_healthy_instance", instances=len(pool))
    request.app[METRICS].requests.labels(outcome.NONE, outcome.NO_INSTANCE).inc()
    return unavailable(request, "No healthy WhisperX instance is available", "no_healthy_instance")


async def _forward(request: web.Request, instance: Instance) -> web.StreamResponse | None:
    """Send the request to ``instance``; None when its connection failed (try the next)."""
    app = request.app
    counter = app[METRICS].requests
    loop = asyncio.get_running_loop()
    started = loop.time()
    body: splice.SplicedBody | None = None
    data: object = None
    if request.body_exists:
        body = splice.SplicedBody(request) if splice.eligible(request) else None
        data = body if body is not None else request.content
    try:
        upstream = await app[SESSION].post(
            upstream_url(instance, request),
            data=data,
            headers=upstream_headers(request),
            # A redirect is part of the instance's answer, for the client to follow or not.
            allow_redirects=False,
        )
    except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as exc:
        counter.labels(instance.url, outcome.CONNECT_FAILED).inc()
        record_failure(app[POOL], instance, str(exc) or type(exc).__name__, passive=True)
        return None
    except TimeoutError:
        counter.labels(instance.url, outcome.TIMEOUT).inc()
        log.warning("upstream_timeout", instance=instance.url, stage="request")
        timeout = app[SETTINGS].request_timeout
        return json_error(
            504, "upstream_timeout", f"The WhisperX instance did not answer within {timeout:g} s"
        )
    except aiohttp.ClientError as exc:
        if body is not None and body.client_gone:
            _client_gone(request, instance, "request")
            return web.Response(status=499)
        counter.labels(instance.url, outcome.UPSTREAM_ERROR).inc()
        log.warning("upstream_failed", instance=instance.url, stage="request", reason=str(exc))
        return json_error(
            502, "upstream_error", "The WhisperX instance failed while receiving the request"
        )
    except asyncio.CancelledError:
        _client_gone(request, instance, "request")
        raise
    app[METRICS].upstream_latency.labels(instance.url).observe(loop.time() - started)
    if body is not None:
        app[METRICS].upload_bytes.labels("splice").inc(body.spliced)
        app[METRICS].upload_bytes.labels("copy").inc(body.copied)
    return await _relay(request, instance, upstream, bool(request.get(splice.ENGAGED)))


async def _relay(
    request: web.Request, instance: Instance, upstream: aiohttp.ClientResponse, spliced: bool
) -> web.StreamResponse:
    """Stream the instance's answer to the client; cut both connections if either fails."""
    counter = request.app[METRICS].requests
    response = web.StreamResponse(
        status=upstream.status, reason=upstream.reason, headers=end_to_end(upstream.headers)
    )
    if spliced:
        response.force_close()
    try:
        await response.prepare(request)
        while chunk := await _read_upstream(upstream):
            await response.write(chunk)
        await response.write_eof()
    except UpstreamBroke as exc:
        upstream.close()
        label = outcome.TIMEOUT if isinstance(exc.error, TimeoutError) else outcome.UPSTREAM_ERROR
        counter.labels(instance.url, label).inc()
        log.warning(
            "upstream_failed", instance=instance.url, stage="response", reason=repr(exc.error)
        )
        # Headers, perhaps part of the body, are out: closing is the only honest signal left.
        if request.transport is not None:
            request.transport.close()
        return response
    except ConnectionError:
        upstream.close()
        _client_gone(request, instance, "response")
        return response
    except asyncio.CancelledError:
        upstream.close()
        _client_gone(request, instance, "response")
        raise
    if request.content.is_eof():
        upstream.release()
    else:
        # The instance answered before taking the whole upload: stop sending it (aiohttp's
        # server drains or drops the rest of the client's body on its own).
        upstream.close()
    counter.labels(instance.url, outcome.OK).inc()
    return response


def _client_gone(request: web.Request, instance: Instance, stage: str) -> None:
    request.app[METRICS].requests.labels(instance.url, outcome.CLIENT_DISCONNECTED).inc()
    log.info("client_disconnected", instance=instance.url, stage=stage)


class UpstreamBroke(Exception):
    """Reading the instance's answer failed; ``error`` says how."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(repr(error))
        self.error = error


async def _read_upstream(upstream: aiohttp.ClientResponse) -> bytes:
    # Kept apart from the client writes: aiohttp reports a closed client connection with a
    # ClientConnectionResetError, a ClientError too, and the two must not be confused.
    try:
        return await upstream.content.readany()
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise UpstreamBroke(exc) from exc
