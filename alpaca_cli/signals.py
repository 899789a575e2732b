"""Ctrl+C and SIGTERM for the long-running commands (``run``, ``tail``): the first asks for one
orderly stop, the second forces.

Why not just KeyboardInterrupt: an exception raised at an arbitrary point can leave a library's
internal lock held (a gRPC channel raised into mid-call hangs the next call: seen in testing) or
a worker created that the state file does not know yet; and CI runners send SIGTERM, which Python
does not turn into an exception at all. So the first signal only sets
:attr:`SignalGuard.stop`: the current step finishes (steps are time-bounded), the stream loop
sees the flag within 100 ms, and teardown runs. ``run`` hands the same event to its Runtime
(``Runtime.stop``), so the reply waits of connect/auth/subscribe (controller calls, Alpaca's
answers on the topic) poll it between short queue reads and end with ``Interrupted`` instead of
sitting out ``--timeout``: the step ends early without anything raised into library code.
:meth:`SignalGuard.abortable` exists for waits of
our own that are safe to interrupt. A second signal raises :class:`ForceQuit` wherever the
program is: teardown is skipped and ``run`` prints the ids it leaves behind (the process exits
right after, so a library left in a bad state no longer matters).
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from types import FrameType
from typing import Any, TextIO

__all__ = ["ForceQuit", "SignalGuard", "StopRequested"]


class StopRequested(BaseException):
    """Raised into an abortable section by the first Ctrl+C/SIGTERM."""


class ForceQuit(BaseException):
    """Raised by the second Ctrl+C/SIGTERM: skip cleanup, say what is left, exit 130."""


_NAMES = {signal.SIGINT: "Ctrl+C", signal.SIGTERM: "SIGTERM"}


class SignalGuard:
    """Installs SIGINT/SIGTERM handlers for the ``with`` block (main thread only).

    Example::

        with SignalGuard(sys.stderr) as guard:
            with guard.abortable():
                wait_for_data()          # the first signal raises StopRequested here
            deploy()                     # here it only sets guard.stop
            if guard.stop.is_set(): ...
    """

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False) -> None:
        self._stream = stream
        self._quiet = quiet
        self.stop = threading.Event()
        """Set by the first signal (or by :meth:`request_stop`)."""
        self.reason: str | None = None
        """``interrupted (Ctrl+C)`` / ``interrupted (SIGTERM)`` once a signal came."""
        self.signals = 0
        self._abortable = 0
        self._saved: dict[int, Any] = {}

    def __enter__(self) -> SignalGuard:
        if threading.current_thread() is threading.main_thread():
            for signum in _NAMES:
                self._saved[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._saved.items():
            signal.signal(signum, handler)
        self._saved.clear()

    @property
    def interrupted(self) -> bool:
        return self.signals > 0

    def _say(self, text: str) -> None:
        """Write from the handler without re-entering the stream: the signal may land while
        the main thread is inside ``stderr.write`` (a buffered stream then raises
        RuntimeError "reentrant call"), so a real file gets one ``os.write``; a closed stderr
        never stops the clean-up either."""
        import os

        stream = self._stream or sys.stderr
        line = text + "\n"
        try:
            fd = stream.fileno()
        except (OSError, ValueError, AttributeError):
            fd = None
        with suppress(OSError, ValueError, RuntimeError):
            if fd is not None:
                os.write(fd, line.encode("utf-8", "replace"))
            else:
                stream.write(line)
                stream.flush()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signals += 1
        name = _NAMES.get(signal.Signals(signum), str(signum))
        if self.signals == 1:
            self.reason = f"interrupted ({name})"
            self.stop.set()
            if not self._quiet:
                self._say(f"{name}: stopping and cleaning up (press Ctrl+C again to skip cleanup)")
            if self._abortable:
                raise StopRequested(self.reason)
            return
        raise ForceQuit(f"second {name}")

    def request_stop(self, reason: str) -> None:
        """Stop for a reason of the program's own (``--duration`` reached...)."""
        if not self.stop.is_set():
            self.reason = reason
            self.stop.set()

    @contextmanager
    def abortable(self) -> Iterator[None]:
        """A section the first signal may interrupt with :class:`StopRequested`."""
        if self.signals:
            raise StopRequested(self.reason or "interrupted")
        self._abortable += 1
        try:
            yield
        finally:
            self._abortable -= 1
