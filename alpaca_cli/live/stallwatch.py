"""``tail --stall-limit``: a notice on stderr when no line was written for a while.

Why a sink wrapper: the tail loop writes each message's lines to its sink and flushes it at
least every poll interval (~100 ms) while the topic is quiet; watching those two calls tells
when output stopped without touching the loop. The notice goes to stderr (stdout is the data)
once per silence, and a "resumed" line follows when lines flow again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["StallWatch"]


class StallWatch:
    """A text sink that forwards to ``out`` and reports silences longer than ``limit`` s.

    Parameters:
        out: where the lines go (stdout).
        limit: seconds without a line before the notice; the watch starts at construction.
        notice: how to say it (writes a line to stderr).
        clock: monotonic seconds (injected for tests).
    """

    def __init__(
        self,
        out: TextIO,
        limit: float,
        notice: Callable[[str], None],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._out = out
        self._limit = limit
        self._notice = notice
        self._clock = clock
        self._last = clock()
        self._stalled = False
        self.stalls = 0
        """Silences reported so far."""

    def write(self, text: str) -> int:
        if self._stalled and text:
            self._stalled = False
            self._notice(f"messages again after {self._clock() - self._last:.1f} s of silence")
        self._last = self._clock()
        return self._out.write(text)

    def flush(self) -> None:
        self._out.flush()
        if not self._stalled and self._clock() - self._last >= self._limit:
            self._stalled = True
            self.stalls += 1
            self._notice(
                f"no message for {self._limit:g} s (--stall-limit): is the connection "
                "subscribed and publishing? `alpaca-md list` shows its status"
            )

    def fileno(self) -> int:
        return self._out.fileno()

    def isatty(self) -> bool:
        return self._out.isatty()
