"""Chaos: WhisperX instances behind the lb are SIGKILLed in turn and restarted while many
transcription requests run concurrently through the lb.

Invariants: a request that had not reached an instance (its connection was refused) is
retried elsewhere and succeeds, so every failure a client sees is a request the dead
instance had already taken; no request hangs past its timeout (each has a client-side
bound, and the count of those that hit it is 0); the dead instance leaves the rotation
within one failed request; every answer that arrives is the right transcript.
"""

from __future__ import annotations

import asyncio
import re
import signal
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devnet import audio
from devnet.redis_server import free_port
from devnet.stack import Service, Stack
from tests.chaos.conftest import crash_lines, report

#: Longer than the default 120 s: a run takes tens of seconds, patience adds more.
pytestmark = pytest.mark.timeout(400)

INSTANCES = 3
#: Each simulated job takes SPEED seconds per second of audio; the audio lasts 1 s.
SPEED = "0.5"
CLIENTS = 12
RUN = 24.0
KILL_EVERY = 4.0
#: How long a killed instance stays dead before it is restarted on the same port.
DEAD_FOR = 1.5
#: The lb's REQUEST_TIMEOUT, and the client's bound on top of it.
LB_TIMEOUT = 10.0
CLIENT_TIMEOUT = LB_TIMEOUT + 5.0
TEXT = "the load balancer fails over before the body is sent"
WAV = audio.synthesize(TEXT, duration=1.0)


@pytest.fixture
def lb_stack(tmp_path: Path) -> Iterator[Stack]:
    """Three simulated WhisperX instances and the lb, as real processes."""
    stack = Stack(tmp_path)
    lb_env = {
        "PORT": str(free_port()),
        # Changed from the defaults (and named in the figures line): an instance killed
        # every 4 s must rejoin within the 24 s run (polls every 30 s by default), and
        # each request needs a bound the client can wait out (3600 s and 10 s connect by
        # default; a refused connection fails over at once either way).
        "HEALTH_CHECK_INTERVAL": "1",
        "REQUEST_TIMEOUT": str(LB_TIMEOUT),
        "CONNECT_TIMEOUT": "2",
        # DEBUG: every routing decision is logged, in order with the failures and the
        # rotation changes, which is how "routed to an instance already out" is counted.
        "LOG_LEVEL": "DEBUG",
        "PYTHONUNBUFFERED": "1",
    }
    for i in range(1, INSTANCES + 1):
        port = free_port()
        argv = ["-m", "devnet.whisperx", "--port", str(port), "--concurrency", "4"]
        stack.services[f"whisperx-{i}"] = Service(
            f"whisperx-{i}", [*argv, "--speed", SPEED], {}, port, "/health"
        )
        lb_env[f"INSTANCE_{i}_URL"] = f"http://127.0.0.1:{port}"
    lb = Service("lb", ["-m", "services.lb"], lb_env, int(lb_env["PORT"]), "/health")
    stack.services["lb"] = lb
    try:
        for service in stack.services.values():
            stack.spawn(service)
        for service in stack.services.values():
            stack.wait_ready(service, 30)
        yield stack
    finally:
        stack.stop()


def lb_counts(text: str) -> Counter[tuple[str, str]]:
    """lb_requests_total by (instance, outcome) from the lb's /metrics."""
    counts: Counter[tuple[str, str]] = Counter()
    for family in text_string_to_metric_families(text):
        if family.name == "lb_requests":
            for sample in family.samples:
                if sample.name == "lb_requests_total":
                    counts[(sample.labels["instance"], sample.labels["outcome"])] += int(
                        sample.value
                    )
    return counts


_EVENT = re.compile(r"\] (\w+)\s.*?\binstance=(\S+)")


def rotation_from_log(log: Path) -> dict[str, int]:
    """Replay the lb's log in order: how often an instance left the rotation, came back,
    and how many requests were routed to it while it was out (there should be none)."""
    out: set[str] = set()
    figures = Counter(routed=0, removed=0, recovered=0, routed_while_out=0)
    for line in log.read_text(errors="replace").splitlines():
        if not (match := _EVENT.search(line)):
            continue
        event, instance = match.groups()
        if event == "instance_unhealthy":
            out.add(instance)
            figures["removed"] += 1
        elif event == "instance_recovered":
            out.discard(instance)
            figures["recovered"] += 1
        elif event == "routed":
            figures["routed"] += 1
            figures["routed_while_out"] += instance in out
    return dict(figures)


async def test_whisperx_kills_fail_over_and_nothing_hangs(lb_stack: Stack):
    lb = lb_stack.services["lb"].url
    victims = [f"whisperx-{i}" for i in range(1, INSTANCES + 1)]
    outcomes: Counter[str] = Counter()
    removals: list[dict[str, Any]] = []
    stop = asyncio.Event()

    async def metrics(session: aiohttp.ClientSession) -> Counter[tuple[str, str]]:
        async with session.get(f"{lb}/metrics") as resp:
            return lb_counts(await resp.text())

    async def in_rotation(session: aiohttp.ClientSession, url: str) -> bool:
        async with session.get(f"{lb}/health") as resp:
            health = await resp.json()
        return {i["url"]: i["is_healthy"] for i in health["instances"]}[url]

    async def client(session: aiohttp.ClientSession) -> None:
        timeout = aiohttp.ClientTimeout(total=CLIENT_TIMEOUT)
        while not stop.is_set():
            form = aiohttp.FormData()
            form.add_field("file", WAV, filename="a.wav", content_type="audio/wav")
            form.add_field("response_format", "json")
            try:
                async with session.post(
                    f"{lb}/v1/audio/transcriptions", data=form, timeout=timeout
                ) as resp:
                    body = await resp.read()
                    if resp.status == 200:
                        right = (await resp.json())["text"] == TEXT
                        outcomes["ok" if right else "wrong_text"] += 1
                    else:
                        outcomes[f"http_{resp.status}"] += 1
                        assert body  # the lb's JSON error, never an empty answer
            except TimeoutError:
                outcomes["client_timeout"] += 1
            except aiohttp.ClientError as exc:
                # The lb cut the connection: the instance died while answering.
                outcomes[f"cut_{type(exc).__name__}"] += 1

    async def killer(session: aiohttp.ClientSession) -> None:
        deadline = time.monotonic() + RUN
        kills = 0
        while time.monotonic() + KILL_EVERY < deadline:
            await asyncio.sleep(KILL_EVERY - DEAD_FOR)
            name = victims[kills % len(victims)]
            service = lb_stack.services[name]
            before = await metrics(session)
            await asyncio.to_thread(lb_stack.kill, name, signal.SIGKILL)
            killed_at = time.monotonic()
            kills += 1
            # Watch the rotation: out at its first refused connection, or after 3 polls.
            # Requests the lb had already routed there by then fail over too: counted.
            failed_before_out = out_after = None
            for _ in range(300):
                if not await in_rotation(session, service.url):
                    out_after = time.monotonic() - killed_at
                    now = await metrics(session)
                    key = (service.url, "connect_failed")
                    failed_before_out = now[key] - before[key]
                    break
                await asyncio.sleep(0.01)
            removals.append(
                {"instance": name, "failed_requests": failed_before_out, "out_after": out_after}
            )
            await asyncio.sleep(DEAD_FOR)
            lb_stack.spawn(service)
            await asyncio.to_thread(lb_stack.wait_ready, service, 30)
        stop.set()

    connector = aiohttp.TCPConnector(limit=CLIENTS + 4)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(killer(session), *(client(session) for _ in range(CLIENTS)))
        final = await metrics(session)
        # The restarted instances come back at their next successful poll.
        for _ in range(100):
            async with session.get(f"{lb}/health") as resp:
                health = await resp.json()
            if health["healthy_instances"] == INSTANCES:
                break
            await asyncio.sleep(0.1)

    rotation = rotation_from_log(lb_stack.var / "logs" / "lb.log")
    by_outcome: Counter[str] = Counter()
    for (_, outcome), n in final.items():
        by_outcome[outcome] += n
    cut = sum(n for k, n in outcomes.items() if k.startswith("cut_"))
    client_failures = sum(n for k, n in outcomes.items() if k not in ("ok", "wrong_text"))
    failed_counts = [r["failed_requests"] for r in removals]
    # The lb's recovery: from each kill until the instance is out of the rotation (new
    # requests go only to live instances from then on).
    out_after = [r["out_after"] for r in removals if r["out_after"] is not None]
    report(
        "whisperx-kills",
        {
            "changed": f"HEALTH_CHECK_INTERVAL=1,REQUEST_TIMEOUT={LB_TIMEOUT:g},CONNECT_TIMEOUT=2"
            ",LOG_LEVEL=DEBUG(rejoin_within_run,client_bound,routing_counted_from_log)",
            "requests": sum(outcomes.values()),
            "ok": outcomes["ok"],
            "wrong_text": outcomes["wrong_text"],
            "http_502": outcomes["http_502"],
            "http_503": outcomes["http_503"],
            "http_504": outcomes["http_504"],
            "cut": cut,
            "client_timeouts": outcomes["client_timeout"],
            "kills": len(removals),
            "failovers": by_outcome["connect_failed"],
            "lb_ok": by_outcome["ok"],
            "lb_upstream_errors": by_outcome["upstream_error"],
            "lb_timeouts": by_outcome["timeout"],
            "failed_over_per_kill": failed_counts,
            "out_of_rotation_median_s": round(statistics.median(out_after), 2)
            if out_after
            else None,
            "out_of_rotation_max_s": round(max(out_after), 2) if out_after else None,
            "routing_decisions_logged": rotation["routed"],
            "removed": rotation["removed"],
            "recovered": rotation["recovered"],
            "routed_while_out": rotation["routed_while_out"],
            "healthy_at_end": health["healthy_instances"],
            "crash_log_lines": crash_lines(lb_stack),
        },
    )
    assert outcomes["client_timeout"] == 0, outcomes
    assert outcomes["wrong_text"] == 0
    assert len(removals) >= 4 and None not in failed_counts
    # Requests not yet sent were retried elsewhere: failovers happened, each ended in an
    # answer, and every failure a client saw is one the lb counts as already sent.
    assert by_outcome["connect_failed"] > 0
    assert by_outcome["ok"] == outcomes["ok"]
    assert client_failures == by_outcome["upstream_error"] + by_outcome["timeout"], outcomes
    assert outcomes["http_503"] == 0
    # Out of the rotation at its first failed request: each kill took the instance out,
    # and no request was routed to an instance after it was out (those the lb had routed
    # there before the first failure came back fail over as well: failed_over_per_kill).
    assert rotation["routed"] >= sum(outcomes.values())  # every decision is in the log
    assert rotation["removed"] >= len(removals) and rotation["routed_while_out"] == 0
    assert health["healthy_instances"] == INSTANCES
    assert crash_lines(lb_stack) == 0
