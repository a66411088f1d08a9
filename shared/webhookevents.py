"""What a webhook delivery carries, shared by whoever queues one: the validator for
completed and failed tasks, the gateway for cancelled ones (in the cancelling script).

A delivery is a hash (keys.webhook(id)) plus its due time in the zset keys.WEBHOOK_QUEUE;
the validator's sender (services.validator.webhooks) drains that queue. Its id is derived
from the task and event, so queueing it twice is a no-op.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from shared.taskdata import INLINE_MAX
from shared.tasks import Status, Task, iso, output_path, public_view

EVENTS = {
    Status.COMPLETED: "task.completed",
    Status.FAILED: "task.failed",
    Status.CANCELLED: "task.cancelled",
}


@dataclass(frozen=True)
class WebhookDelivery:
    """One delivery to queue: its id and the hash's initial fields."""

    id: str
    fields: dict[str, str]

    def flat(self) -> list[str]:
        return [v for pair in self.fields.items() for v in pair]


def delivery_id(task_id: str, status: Status) -> str:
    """Stable across retries and across replicas: the Standard Webhooks ``webhook-id``."""
    return f"msg_{task_id}_{status.value}"


def render_payload(task: Task, output: bytes | None) -> str:
    """The JSON body: with the output if it fits in INLINE_MAX bytes, else only its URL."""
    url = output_path(task.task_id) if task.status is Status.COMPLETED else None
    payload = {
        "type": EVENTS[task.status],
        "timestamp": iso(task.completed_at or time.time()),
        "data": public_view(task, output, output_url=url),
    }
    body = json.dumps(payload, separators=(",", ":"))
    if output is not None and len(body) > INLINE_MAX:
        payload["data"] = public_view(task, None, output_url=url)
        body = json.dumps(payload, separators=(",", ":"))
    return body


def delivery(task: Task, output: bytes | None) -> WebhookDelivery | None:
    """The delivery of ``task``'s final event to its callback_url; None without one."""
    if not task.callback_url or task.status not in EVENTS:
        return None
    return WebhookDelivery(
        id=delivery_id(task.task_id, task.status),
        fields={
            "url": task.callback_url,
            "body": render_payload(task, output),
            "task_id": task.task_id,
            "attempts": "0",
            "state": "pending",
        },
    )
