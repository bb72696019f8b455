"""The reader watch: one timer checks every socket whose app has not come back to receive()."""

from __future__ import annotations

import asyncio

import pytest

from asgi_ws_stabilizer.aio import readers
from asgi_ws_stabilizer.aio.readers import ReaderWatch


class Reader:
    """Counts ``check_reader`` calls."""

    def __init__(self) -> None:
        self.checks = 0

    def check_reader(self) -> None:
        self.checks += 1


@pytest.fixture(autouse=True)
def no_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    """The timer fires on the next loop turns instead of after 10 ms."""
    monkeypatch.setattr(readers, "READER_CHECK_DELAY", 0)


async def turns(n: int = 3) -> None:
    """Let the loop run a few times."""
    for _ in range(n):
        await asyncio.sleep(0)


async def test_one_timer_checks_every_unread_reader_once() -> None:
    """Many readers share one timer, and each is checked once when it fires."""
    watch = ReaderWatch()
    many = [Reader() for _ in range(3)]
    watch.add(many[0])
    timer = watch.armed
    assert timer is not None
    for reader in many[1:]:
        watch.add(reader)
    watch.add(many[0])
    assert watch.armed is timer
    await turns()
    assert [r.checks for r in many] == [1, 1, 1]
    assert watch.unread == set()
    assert watch.armed is None
    await turns()
    assert [r.checks for r in many] == [1, 1, 1]


async def test_a_discarded_reader_is_not_checked() -> None:
    """A reader whose app came back to receive() before the timer is left alone."""
    watch = ReaderWatch()
    back, away = Reader(), Reader()
    watch.add(back)
    watch.add(away)
    watch.discard(back)
    await turns()
    assert (back.checks, away.checks) == (0, 1)


async def test_discarding_an_unknown_reader_is_harmless() -> None:
    """Discarding a reader that was never added changes nothing."""
    watch = ReaderWatch()
    reader = Reader()
    watch.discard(reader)
    watch.add(reader)
    await turns()
    assert reader.checks == 1


async def test_a_reader_added_after_a_check_arms_a_new_timer() -> None:
    """After the timer fired, the next add arms another one, and that reader is checked."""
    watch = ReaderWatch()
    first, second = Reader(), Reader()
    watch.add(first)
    await turns()
    assert watch.armed is None
    watch.add(second)
    watch.add(first)
    assert watch.armed is not None
    await turns()
    assert (first.checks, second.checks) == (2, 1)


async def test_the_timer_uses_the_check_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    """The timer is set ``READER_CHECK_DELAY`` after the add, on the running loop's clock."""
    monkeypatch.setattr(readers, "READER_CHECK_DELAY", 60.0)
    watch = ReaderWatch()
    reader = Reader()
    loop = asyncio.get_running_loop()
    before = loop.time()
    watch.add(reader)
    timer = watch.armed
    assert timer is not None
    assert before + 60.0 <= timer.when() <= loop.time() + 60.0
    await turns()
    assert reader.checks == 0
    timer.cancel()
