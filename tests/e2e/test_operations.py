"""What an operator sees of a running devnet stack: the dashboard rendered by headless
Chromium, and every metric the Grafana dashboard and the alert rules use, scraped from
the three services with the labels they use."""

from __future__ import annotations

import asyncio
import json
import signal
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from devnet import audio
from devnet.stack import Ports, Stack
from tests.deploy.monitoring import all_references, scraped_labels
from tests.e2e.browser import chromium, full_page_screenshot
from tests.e2e.conftest import gateway, wait_final

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / "var" / "dashboard" / "dashboard.png"
KINDS = ["transcription"] * 3 + ["tts"] * 3 + ["summarization"] * 3
#: Tasks queued while the validator is paused: priority -> how many.
HELD = {"high": 2, "low": 3}
ARTICLE = "Validators send tasks to miners and score every answer. " * 4
#: What the page shows for "no such entry" (an en dash).
NONE = "\u2013"
#: Seconds the page gets to show what a condition expects (it polls every 5 s).
PATIENCE = 60


@pytest.fixture(scope="module")
def ops_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # The shipped defaults; LOG_LEVEL=WARNING only keeps the service logs short.
    quiet = {"LOG_LEVEL": "WARNING"}
    running = Stack(tmp_path_factory.mktemp("ops"), Ports.free(), extra_env=quiet)
    running.start(timeout=90)
    yield running
    running.stop()


async def _submit(session: aiohttp.ClientSession, stack: Stack, kind: str, **extra: str) -> str:
    url = f"{gateway(stack)}/{kind}"
    if kind == "transcription":
        form = aiohttp.FormData()
        form.add_field("audio_file", audio.synthesize("the dashboard shows every miner"))
        for name, value in extra.items():
            form.add_field(name, value)
        request = session.post(url, data=form)
    else:
        text = ARTICLE if kind == "summarization" else "Hello from the operations test."
        request = session.post(url, json={"text": text, **extra})
    async with request as resp:
        body = await resp.json()
        assert resp.status == 202, body
        return body["task_id"]


async def _run(stack: Stack, kinds: list[str], **extra: str) -> dict[str, dict[str, Any]]:
    async with aiohttp.ClientSession() as session:
        ids = [await _submit(session, stack, kind, **extra) for kind in kinds]
        views = await wait_final(session, stack, ids, patience=180)
    assert len(views) == len(ids), f"{len(ids) - len(views)} tasks did not finish"
    return views


@pytest.fixture(scope="module")
def finished(ops_stack: Stack) -> dict[str, dict[str, Any]]:
    """Tasks of every type, run to their final status: the figures the page must show."""
    return asyncio.run(_run(ops_stack, KINDS))


def _submit_now(stack: Stack, priority: str) -> str:
    request = urllib.request.Request(
        f"{gateway(stack)}/tts",
        data=json.dumps({"text": "held in the queue", "priority": priority}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.load(resp)["task_id"]


#: A table's cell texts in one script call: the page replaces its rows every few seconds,
#: so reading them element by element could meet rows already gone.
_ROWS = """return Array.from(document.querySelectorAll(arguments[0] + ' tbody tr'),
  (row) => Array.from(row.cells, (cell) => cell.textContent.trim()));"""


def _rows(browser: Any, table: str) -> list[list[str]]:
    return browser.execute_script(_ROWS, table)


_SERIES = """const path = document.querySelector(
  `#${arguments[0]}-chart path[data-series="${arguments[1]}"]`);
return path ? Object.fromEntries(Array.from(path.attributes, (a) => [a.name, a.value])) : null;"""


def _series(browser: Any, chart: str, series: str) -> dict[str, str]:
    """One chart line's attributes (d, data-points, data-max), read in one script call."""
    return browser.execute_script(_SERIES, chart, series) or {"data-max": "0"}


def _wait(browser: Any, condition: Callable[[], bool], what: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        WebDriverWait(browser, PATIENCE, poll_frequency=0.5).until(lambda _: condition())
    except Exception as exc:
        status = browser.find_element("id", "status").text
        raise AssertionError(f"the page never showed {what} (status: {status!r})") from exc


def test_the_dashboard_shows_hotkeys_queues_and_the_chart_in_headless_chromium(
    ops_stack: Stack, finished: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    listing = json.loads((ops_stack.var / "devnet" / "miners.json").read_text())
    hotkeys = [miner["hotkey"] for miner in listing]
    completed = sum(view["status"] == "completed" for view in finished.values())
    validator = ops_stack.services["validator"].process
    assert validator is not None
    held: list[str] = []
    with chromium(tmp_path / "profile") as browser:
        browser.get(f"http://127.0.0.1:{ops_stack.ports.gateway}/dashboard")
        # The miners table: every devnet miner's hotkey, with its uid.
        _wait(
            browser,
            lambda: {row[1] for row in _rows(browser, "#miners")} >= set(hotkeys),
            f"the hotkeys {hotkeys}",
        )
        uids = {row[1]: row[0] for row in _rows(browser, "#miners")}
        assert {uids[m["hotkey"]] for m in listing} == {str(m["uid"]) for m in listing}
        # The chart: one point per 15 s bucket over 15 minutes, the tasks above plotted.
        _wait(
            browser,
            lambda: float(_series(browser, "throughput", "completed")["data-max"]) > 0,
            "completed tasks in the throughput chart",
        )
        completed_line = _series(browser, "throughput", "completed")
        assert completed_line["data-points"] == "60"
        assert completed_line["d"].count("L") + completed_line["d"].count("M") == 60
        assert int(_series(browser, "latency", "p50")["data-points"]) >= 1
        tasks_card = browser.find_element(By.ID, "card-tasks").text
        assert f"{completed} completed" in tasks_card, tasks_card
        # Queue figures: with the validator paused, new tasks wait in their queues.
        validator.send_signal(signal.SIGSTOP)
        try:
            held = [_submit_now(ops_stack, p) for p, n in HELD.items() for _ in range(n)]
            waiting = {p: str(HELD.get(p, 0)) for p in ("urgent", "high", "normal", "low")}
            _wait(
                browser,
                lambda: {row[0]: row[1] for row in _rows(browser, "#queues")} == waiting,
                f"the waiting tasks {HELD}",
            )
            queues = {row[0]: row for row in _rows(browser, "#queues")}
            for priority in HELD:
                assert queues[priority][3] not in (NONE, ""), queues[priority]  # oldest waiting
            assert queues["urgent"][3] == NONE
            instances = browser.find_element(By.ID, "instances-note").text
            assert "3 of 3 healthy" in instances, instances
            full_page_screenshot(browser, SCREENSHOT)
        finally:
            validator.send_signal(signal.SIGCONT)
    assert SCREENSHOT.stat().st_size > 10_000
    print(f"dashboard screenshot: {SCREENSHOT.relative_to(REPO)}")
    views = asyncio.run(_final(ops_stack, held))
    assert len(views) == len(held)


async def _final(stack: Stack, task_ids: list[str]) -> dict[str, dict[str, Any]]:
    async with aiohttp.ClientSession() as session:
        return await wait_final(session, stack, task_ids, patience=180)


def _scrape(port: int, path: str = "/metrics") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        return resp.read().decode()


def test_every_metric_the_dashboard_and_the_rules_use_is_scraped_with_its_labels(
    ops_stack: Stack, finished: dict[str, dict[str, Any]]
) -> None:
    ports = ops_stack.ports
    # The running scores reach the validator's gauges at its next operator-state round.
    deadline = time.monotonic() + 30
    while "validator_miner_score{" not in _scrape(ports.validator):
        assert time.monotonic() < deadline, "no validator_miner_score after 30 s"
        time.sleep(0.5)
    scraped = scraped_labels([_scrape(p) for p in (ports.gateway, ports.validator, ports.lb)])
    references = all_references()
    assert len(references) >= 20
    missing = {name: labels for name, labels in references.items() if name not in scraped}
    assert not missing, f"named but not exported: {sorted(missing)}"
    wrong = {
        name: sorted(labels - scraped[name])
        for name, labels in references.items()
        if not labels <= scraped[name]
    }
    assert not wrong, f"labels used but not exported: {wrong}"
    print(f"{len(references)} metrics named in the dashboard and rules, all scraped")
