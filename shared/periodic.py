"""Interruptible waits for background loops: sleep, but leave as soon as ``stop`` is set."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator


async def pause(stop: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds`` unless ``stop`` is set first; True when it was (time to leave)."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return False
    return True


async def every(interval: float, stop: asyncio.Event) -> AsyncIterator[None]:
    """Yield once per ``interval`` (after waiting it) until ``stop`` is set."""
    while not await pause(stop, interval):
        yield
