"""Idempotency-Key on submissions: a retried POST gets the first answer, not a second task.

The key is scoped to the caller's identity and remembered (IDEMPOTENCY_TTL, 24 h) together
with a fingerprint of the validated request and the 202 answer. The claim is made by the
same Lua script that stores the task (:meth:`shared.store.TaskStore.create_once`), so of
several concurrent duplicates exactly one creates a task and the others replay its answer.

- same key, same request: the original answer again (status, body, Location), marked
  ``Idempotent-Replayed: true``;
- same key, another request (other fields, other audio, another endpoint): 422;
- an invalid request is a 400 as always, and claims nothing.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from services.gateway.errors import ApiError
from services.gateway.schemas import Upload
from shared import keys
from shared.store import Guard

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_CHARS = 255
_VALID = re.compile(rf"[!-~]{{1,{MAX_CHARS}}}")

PARAMETER = {
    "name": HEADER,
    "in": "header",
    "required": False,
    "description": "any unique string, e.g. a UUID; a retry with the same key and request "
    "returns the first answer instead of queuing a second task (kept IDEMPOTENCY_TTL, 24 h)",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_CHARS, "pattern": "^[!-~]+$"},
}


def header_value(request: web.Request) -> str | None:
    """The request's Idempotency-Key; 400 unless it is 1 to 255 visible ASCII characters."""
    value = request.headers.get(HEADER)
    if value is None:
        return None
    if not _VALID.fullmatch(value):
        raise ApiError(
            400,
            "invalid_idempotency_key",
            f"{HEADER} must be 1 to {MAX_CHARS} visible ASCII characters",
            HEADER,
        )
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Upload):
        return "sha256:" + value.sha256
    return value


def fingerprint(task_type: str, data: dict[str, Any]) -> str:
    """A digest of what the task will be: its type and validated fields (defaults filled
    in, so leaving out ``priority`` equals sending ``normal``; audio by its SHA-256)."""
    canonical = {"task_type": task_type, **{k: _plain(v) for k, v in data.items()}}
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Claim:
    """One submission made with an Idempotency-Key."""

    identity: str
    key: str
    fingerprint: str
    ttl: int

    def guard(self, body: dict[str, Any], location: str) -> Guard:
        """What the store sets if this request creates the task: the answer to replay."""
        record = {"fingerprint": self.fingerprint, "status": 202, "body": body}
        record["location"] = location
        digest = hashlib.sha256(self.key.encode()).hexdigest()
        return Guard(keys.idempotency(self.identity, digest), json.dumps(record).encode(), self.ttl)

    def replay(self, stored: bytes) -> web.Response:
        """The first answer for a matching request; 422 for a different one."""
        record = json.loads(stored)
        if record["fingerprint"] != self.fingerprint:
            raise ApiError(
                422,
                "idempotency_key_reused",
                f"this {HEADER} was used for a different request",
                HEADER,
            )
        return web.json_response(
            record["body"],
            status=record["status"],
            headers={"Location": record["location"], REPLAYED_HEADER: "true"},
        )
