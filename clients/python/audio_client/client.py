"""The blocking client: one method per API call, typed answers, :class:`ApiError` on errors.

``Client("http://localhost:8000", api_key)`` talks to the gateway's ``/api/v1`` routes
(docs/api.md). Submissions answer at once with a :class:`Submission`; :meth:`Client.wait`
follows the task to its final status over the events stream, or by polling where the
gateway has no events stream.
"""

from __future__ import annotations

import mimetypes
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, Union

import httpx

from audio_client import follow
from audio_client.errors import ConnectionFailed, from_response
from audio_client.models import Submission, Task, TaskPage

#: A file to transcribe: a path, its bytes, or a binary file object.
AudioInput = Union[str, "os.PathLike[str]", bytes, IO[bytes]]

DEFAULT_URL = "http://localhost:8000"
API = "/api/v1"
#: Seconds to connect, and to wait for any answer, unless ``timeout`` says otherwise.
DEFAULT_TIMEOUT = 30.0


class Client:
    """A connection pool to one gateway; use it as a context manager, or call :meth:`close`.

    ``base_url`` is the gateway's address (``http://host:8000``; a trailing ``/api/v1`` is
    accepted too). ``api_key`` is sent as ``Authorization: Bearer <key>``; without one the
    gateway treats the caller as anonymous, which it allows only with
    ``API_KEYS_REQUIRED=false`` (the development default).
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        poll_interval: float = 1.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        base = base_url.rstrip("/")
        if base.endswith(API):
            base = base[: -len(API)]
        self.base_url = base
        self.timeout = timeout
        self.poll_interval = poll_interval
        headers = {"User-Agent": "bittensor-audio-client/0.1.0"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._http = httpx.Client(
            base_url=base, headers=headers, timeout=timeout, transport=transport
        )

    def __repr__(self) -> str:
        return f"Client({self.base_url!r})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------------ submissions

    def transcribe(
        self,
        audio: AudioInput,
        *,
        language: str | None = None,
        priority: str | None = None,
        callback_url: str | None = None,
        filename: str | None = None,
        idempotency_key: str | None = None,
    ) -> Submission:
        """Submit speech to transcribe (WAV, MP3, FLAC, OGG, M4A or WebM, by content).

        ``language`` is the ``source_language`` (the gateway's default, ``en``, when left
        out); ``priority`` one of low, normal (default), high, urgent."""
        data = _fields(language, priority, callback_url)
        if isinstance(audio, (str, os.PathLike)):
            path = Path(audio)
            with path.open("rb") as stream:
                return self._submit_file(stream, filename or path.name, data, idempotency_key)
        if isinstance(audio, bytes):
            return self._submit_file(audio, filename or "audio", data, idempotency_key)
        name = filename or Path(str(getattr(audio, "name", "audio"))).name
        return self._submit_file(audio, name, data, idempotency_key)

    def tts(
        self,
        text: str,
        *,
        language: str | None = None,
        priority: str | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> Submission:
        """Submit text to speak; the output is a WAV file (:meth:`output`)."""
        body = {"text": text, **_fields(language, priority, callback_url)}
        return self._submit_json("tts", body, idempotency_key)

    def summarize(
        self,
        text: str,
        *,
        language: str | None = None,
        priority: str | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> Submission:
        """Submit text to summarize; the summary is the result's ``output_text``."""
        body = {"text": text, **_fields(language, priority, callback_url)}
        return self._submit_json("summarization", body, idempotency_key)

    # ------------------------------------------------------------------ tasks

    def get(self, task_id: str, *, wait: float | None = None) -> Task:
        """The task now; with ``wait`` (seconds, at most 60), the gateway answers as soon as
        the task is final, or after ``wait`` seconds with its state then."""
        params, timeout = {}, None
        if wait is not None:
            params["wait"] = str(max(0, min(60, round(wait))))
            timeout = httpx.Timeout(self.timeout, read=self.timeout + wait)
        response = self._request(
            "GET", f"{API}/tasks/{task_id}", params=params, timeout=timeout or self.timeout
        )
        return Task.from_json(response.json())

    def list(
        self, *, status: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> TaskPage:
        """One page of the caller's tasks, newest first (``limit`` 1 to 100, default 10);
        ``cursor`` is the previous page's ``next_cursor``."""
        params = {"status": status, "limit": limit, "cursor": cursor}
        response = self._request(
            "GET", f"{API}/tasks", params={k: str(v) for k, v in params.items() if v is not None}
        )
        return TaskPage.from_json(response.json())

    def cancel(self, task_id: str) -> Task:
        """Cancel a pending or processing task; raises :class:`Conflict` (409) when it had
        already ended."""
        return Task.from_json(self._request("DELETE", f"{API}/tasks/{task_id}").json())

    def output(self, task_id: str) -> bytes:
        """A completed task's raw output: WAV bytes for TTS, UTF-8 text otherwise."""
        return self._request("GET", f"{API}/tasks/{task_id}/output").content

    def download(self, task_id: str, path: str | os.PathLike[str]) -> int:
        """Stream a completed task's output into ``path``; returns the bytes written."""
        written = 0
        try:
            with self._http.stream("GET", f"{API}/tasks/{task_id}/output") as response:
                if response.is_error:
                    response.read()
                    raise from_response(response)
                with Path(path).open("wb") as out:
                    for chunk in response.iter_bytes():
                        out.write(chunk)
                        written += len(chunk)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        return written

    def events(self, task_id: str, *, timeout: float | None = None) -> Iterator[Task]:
        """The task's states as the events stream sends them, ending with its final one;
        reconnects with ``Last-Event-ID`` when the stream breaks. Raises
        :class:`follow.EventsUnavailable` when the gateway has no events stream."""
        return follow.events(self, task_id, timeout=timeout)

    def wait(
        self,
        task_id: str,
        *,
        timeout: float | None = None,
        on_update: Callable[[Task], Any] | None = None,
    ) -> Task:
        """Block until the task is completed, failed or cancelled and return it.

        Follows the events stream; falls back to polling (``?wait=``) when the gateway has
        none or the stream keeps breaking. ``on_update`` is called with each new state;
        :class:`WaitTimeout` after ``timeout`` seconds (None: no limit)."""
        return follow.wait(self, task_id, timeout=timeout, on_update=on_update)

    # ------------------------------------------------------------------ plumbing

    def _submit_file(
        self, content: Any, name: str, data: dict[str, str], idempotency_key: str | None
    ) -> Submission:
        media = mimetypes.guess_type(name)[0] or "application/octet-stream"
        response = self._request(
            "POST",
            f"{API}/transcription",
            files={"audio_file": (name, content, media)},
            data=data,
            headers=_idempotency(idempotency_key),
        )
        return Submission.from_json(response.json())

    def _submit_json(
        self, endpoint: str, body: dict[str, str], idempotency_key: str | None
    ) -> Submission:
        response = self._request(
            "POST", f"{API}/{endpoint}", json=body, headers=_idempotency(idempotency_key)
        )
        return Submission.from_json(response.json())

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        if response.is_error:
            raise from_response(response)
        return response

    def _unreachable(self, exc: Exception) -> ConnectionFailed:
        return ConnectionFailed(f"{self.base_url}: {str(exc) or type(exc).__name__}")


def _fields(language: str | None, priority: str | None, callback_url: str | None) -> dict:
    given = {"source_language": language, "priority": priority, "callback_url": callback_url}
    return {k: v for k, v in given.items() if v is not None}


def _idempotency(key: str | None) -> dict[str, str]:
    return {"Idempotency-Key": key} if key else {}
