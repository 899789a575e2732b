"""An asyncio event loop running in a daemon thread, driven from synchronous code.

The devstack servers all live in one event loop, while their callers (tests, the sync ``dapr``
SDK, ``alpaca-md run --embedded``) are synchronous and block. Running the loop in its own thread
lets both sides run at once without the caller having to be async.

Example::

    with LoopThread() as lt:
        sidecar = DaprSidecar(Broker())
        lt.run(sidecar.start())
        ...
        lt.run(sidecar.stop())
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["LoopThread"]

T = TypeVar("T")


class LoopThread:
    """Own a fresh event loop and run it forever in a daemon thread until :meth:`stop`.

    Call order: :meth:`start` (or ``with``), then any number of :meth:`run` / :meth:`call`,
    then :meth:`stop`. A daemon thread cannot keep the interpreter alive if a caller forgets
    :meth:`stop`.

    **Parameters**

    * ``name`` - the thread's name, shown in tracebacks and ``threading.enumerate()``.
    """

    def __init__(self, name: str = "devstack-loop") -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The running loop.

        Raises:
            RuntimeError: :meth:`start` was not called (or :meth:`stop` was).
        """
        if self._loop is None:
            raise RuntimeError("LoopThread is not started")
        return self._loop

    def start(self) -> LoopThread:
        """Create the loop and start its thread; return once the loop is running."""
        if self._thread is not None:
            raise RuntimeError("LoopThread already started")
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        def main() -> None:
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()

        self._loop = loop
        self._thread = threading.Thread(target=main, name=self.name, daemon=True)
        self._thread.start()
        ready.wait()
        return self

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and block until it returns (or raises) its result.

        Must not be called from the loop thread itself (that would deadlock).

        Raises:
            TimeoutError: ``timeout`` seconds passed; the coroutine is cancelled.
            Exception: whatever ``coro`` raised.
        """
        try:
            self._check_not_loop_thread()
            loop = self.loop
        except RuntimeError:
            coro.close()  # never scheduled: close it so no "never awaited" warning hides the bug
            raise
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run the plain function ``fn(*args)`` on the loop thread and return its result.

        For loop-bound objects whose methods are synchronous (``Broker.subscribe``).
        """

        async def wrapper() -> T:
            return fn(*args)

        return self.run(wrapper())

    def stop(self, timeout: float = 5.0) -> None:
        """Cancel leftover tasks, stop the loop, join the thread and close the loop. Idempotent."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        if thread.is_alive():
            self._check_not_loop_thread()

            async def cancel_rest() -> None:
                me = asyncio.current_task()
                tasks = [t for t in asyncio.all_tasks() if t is not me]
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await loop.shutdown_asyncgens()

            try:
                asyncio.run_coroutine_threadsafe(cancel_rest(), loop).result(timeout)
            finally:
                loop.call_soon_threadsafe(loop.stop)
                thread.join(timeout)
        if not thread.is_alive():
            loop.close()
        self._loop = None
        self._thread = None

    def _check_not_loop_thread(self) -> None:
        if self._thread is not None and threading.current_thread() is self._thread:
            raise RuntimeError("LoopThread.run/stop called from its own loop thread")

    def __enter__(self) -> LoopThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
