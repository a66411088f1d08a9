"""Python client for the Bittensor audio subnet gateway (docs/api.md).

from audio_client import Client

with Client("http://localhost:8000", api_key="ak_...") as client:
    task = client.wait(client.transcribe("audio.wav").task_id)
    print(task.result.output_text)
"""

from audio_client.client import DEFAULT_URL, Client
from audio_client.errors import (
    ApiError,
    AudioClientError,
    AuthenticationError,
    BadRequest,
    Conflict,
    ConnectionFailed,
    NotFound,
    RateLimited,
    Unavailable,
    WaitTimeout,
)
from audio_client.follow import EventsUnavailable
from audio_client.models import FINAL_STATUSES, Result, Submission, Task, TaskPage

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_URL",
    "FINAL_STATUSES",
    "ApiError",
    "AudioClientError",
    "AuthenticationError",
    "BadRequest",
    "Client",
    "Conflict",
    "ConnectionFailed",
    "EventsUnavailable",
    "NotFound",
    "RateLimited",
    "Result",
    "Submission",
    "Task",
    "TaskPage",
    "Unavailable",
    "WaitTimeout",
    "__version__",
]
