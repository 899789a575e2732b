"""LoopThread: an event loop in a daemon thread, driven from synchronous code."""

from __future__ import annotations

import asyncio
import threading

import pytest

from alpaca_cli.devstack.loopthread import LoopThread

pytestmark = pytest.mark.timeout(30)


def test_run_returns_the_coroutines_result_from_the_loop_thread() -> None:
    async def where() -> str:
        await asyncio.sleep(0)
        return threading.current_thread().name

    with LoopThread(name="lt-test") as lt:
        assert lt.run(where()) == "lt-test"
        assert lt.call(lambda a, b: a + b, 2, 3) == 5


def test_run_raises_what_the_coroutine_raised() -> None:
    async def fail() -> None:
        raise ValueError("boom")

    with LoopThread() as lt, pytest.raises(ValueError, match="boom"):
        lt.run(fail())


def test_run_times_out_and_cancels() -> None:
    cancelled = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with LoopThread() as lt:
        with pytest.raises(TimeoutError):
            lt.run(forever(), timeout=0.05)
        assert cancelled.wait(5)


def test_stop_cancels_leftover_tasks_and_closes_the_loop() -> None:
    cancelled = threading.Event()

    async def background() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cancelled.set()

    lt = LoopThread().start()
    loop = lt.loop
    lt.call(lambda: asyncio.ensure_future(background()))
    lt.stop()
    assert cancelled.is_set()
    assert loop.is_closed()
    lt.stop()  # idempotent
    with pytest.raises(RuntimeError, match="not started"):
        _ = lt.loop


def test_run_from_the_loop_thread_is_refused_instead_of_deadlocking() -> None:
    with LoopThread() as lt:

        async def reenter() -> None:
            lt.run(asyncio.sleep(0))

        with pytest.raises(RuntimeError, match="own loop thread"):
            lt.run(reenter())
