"""Ending a devstack process together with the process that started it.

A parent that launches us with a pipe on stdin closes that pipe when it exits, however it exits
(SIGKILL included), so reading stdin to EOF is a portable "my parent is gone" signal. `dev up
--exit-with-stdin` (used by `run --embedded`) and the feed child of `dev up` both rely on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading

__all__ = ["stop_on_stdin_eof"]


def stop_on_stdin_eof(
    loop: asyncio.AbstractEventLoop, stop: asyncio.Event, *, name: str
) -> threading.Thread:
    """Set ``stop`` (an event of ``loop``) once stdin reaches EOF; returns the daemon reader.

    Reading blocks, so it happens in a daemon thread; the event is set through the loop because
    asyncio events are not thread-safe. A loop that has already closed is not an error.
    """

    def watch() -> None:
        with contextlib.suppress(Exception):
            while sys.stdin.buffer.read(65536):
                pass
        with contextlib.suppress(RuntimeError):  # loop already closed
            loop.call_soon_threadsafe(stop.set)

    thread = threading.Thread(target=watch, name=name, daemon=True)
    thread.start()
    return thread
