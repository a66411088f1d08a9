"""Progress of a task being waited for, on stderr.

On a terminal one line is redrawn in place twice a second (status, attempts, elapsed
time); elsewhere (a log file, a pipe) each new state is one line, so logs stay readable.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from audio_client.models import Task

REDRAW = 0.5  # seconds between redraws of the terminal line


class Progress:
    """Use as a context manager around the wait; pass :meth:`update` as ``on_update``."""

    def __init__(self, task_id: str, stream: TextIO | None = None) -> None:
        self.task_id = task_id
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()
        self.started = time.monotonic()
        self.status, self.attempts = "waiting", 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Progress:
        if self.live:
            self._thread = threading.Thread(target=self._redraw, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            with self._lock:
                self.stream.write("\r\x1b[K")  # clear the line: the result follows
                self.stream.flush()

    def update(self, task: Task) -> None:
        with self._lock:
            self.status, self.attempts = task.status, task.attempts
        if not self.live:
            self.stream.write(self.line() + "\n")
            self.stream.flush()

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        return f"{self.task_id} {self.status} attempts={self.attempts} elapsed={elapsed:.1f}s"

    def _redraw(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                self.stream.write("\r\x1b[K" + self.line())
                self.stream.flush()
            self._stop.wait(REDRAW)
