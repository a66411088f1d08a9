"""Webhook payloads follow the 64 KiB rule: the base64 output only while the whole body
fits in 64 KiB (it is a Redis value until delivered), otherwise only output_url."""

from __future__ import annotations

import base64
import json

from services.validator.webhooks import render_payload
from shared.taskdata import INLINE_MAX
from shared.tasks import Status, Task, TaskType, now


def _completed(size: int) -> Task:
    return Task(
        "0b9b6c8e-3f2a-4c1d-9e8f-7a6b5c4d3e2f",
        TaskType.TTS,
        "en",
        status=Status.COMPLETED,
        completed_at=now(),
        result={"miner_uid": 3},
        output_size=size,
    )


def test_small_output_is_embedded():
    output = b"\x01" * 1000
    body = render_payload(_completed(len(output)), output)
    data = json.loads(body)["data"]["result"]
    assert base64.b64decode(data["output_data"]) == output
    assert data["output_url"] == "/api/v1/tasks/0b9b6c8e-3f2a-4c1d-9e8f-7a6b5c4d3e2f/output"


def test_output_that_would_pass_64_kib_is_only_linked():
    output = b"\x01" * 60_000  # 80,000 bytes of base64: the body would pass 64 KiB
    body = render_payload(_completed(len(output)), output)
    assert len(body) <= INLINE_MAX
    data = json.loads(body)["data"]["result"]
    assert data["output_data"] is None
    assert data["output_url"].endswith("/output")
    assert data["miner_uid"] == 3


def test_failed_task_has_no_output_url():
    task = Task("0b9b6c8e-3f2a-4c1d-9e8f-7a6b5c4d3e2f", TaskType.TTS, "en", status=Status.FAILED)
    task.error = "no usable answer"
    data = json.loads(render_payload(task, None))["data"]
    assert data["result"] is None and data["error"] == "no usable answer"
