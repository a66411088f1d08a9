import asyncio

from shared.periodic import every, pause


async def test_pause_reports_whether_stop_was_set():
    stop = asyncio.Event()
    assert await pause(stop, 0.01) is False
    stop.set()
    assert await pause(stop, 60) is True


async def test_every_yields_until_stopped():
    stop = asyncio.Event()
    ticks = 0
    async for _ in every(0.001, stop):
        ticks += 1
        if ticks == 3:
            stop.set()
    assert ticks == 3
