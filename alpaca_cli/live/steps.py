"""Step lines for ``run``: a spinner on a terminal, ``✓``/``✗`` lines with timings everywhere.

Every step writes a start line (``… deploy``) when the console is not interactive, so a CI log,
or a test waiting for a step before it sends a signal, can see which step is running. A failed
step prints what failed and what to do; the caller decides whether to go on (teardown always
does).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TextIO

from alpaca_cli.errors import AlpacaMdError

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["StepRunner"]


class StepRunner:
    """Runs named steps, prints their outcome, and keeps their durations.

    Parameters:
        stream: where the lines go (stderr).
        clock: monotonic seconds (injected so tests control time).
        console: a Rich console for a spinner on a terminal; ``None`` for plain lines.
        redact: applied to every error text before printing.

    Example::

        steps = StepRunner(sys.stderr, time.monotonic)
        with steps.step("deploy", "deploying the controller worker") as step:
            result = deploy(...)
            step.detail = f"worker {result.worker_id}"
        steps.timings   # {"deploy": 0.12}
    """

    def __init__(
        self,
        stream: TextIO,
        clock: Callable[[], float],
        *,
        console: Console | None = None,
        redact: Callable[[str], str] = str,
    ) -> None:
        self._stream = stream
        self._clock = clock
        self._console = console
        self._redact = redact
        self.timings: dict[str, float] = {}
        """Step name -> seconds, in the order the steps ran (failed ones included)."""
        self.failed: dict[str, str] = {}
        """Step name -> the error text, for steps that failed."""

    def _line(self, text: str) -> None:
        self._stream.write(self._redact(text) + "\n")
        self._stream.flush()

    def skip(self, name: str, reason: str) -> None:
        """A step that does not apply this time: one line saying why."""
        self._line(f"- {name} skipped ({reason})")

    @contextmanager
    def step(self, name: str, label: str) -> Iterator[Step]:
        """Time the block; print ✓ on success, ✗ with the error and its hint on failure.

        Exceptions propagate unchanged (our errors, interrupts, anything else).
        """
        handle = Step()
        start = self._clock()
        status = None
        if self._console is not None:
            status = self._console.status(f"{label}…")
            status.start()
        else:
            self._line(f"… {name}: {label}")
        try:
            yield handle
        except BaseException as exc:
            self.timings[name] = self._clock() - start
            if status is not None:
                status.stop()
            text = self._redact(_describe(exc))
            self.failed[name] = text
            self._line(f"✗ {name} ({self.timings[name]:.2f}s): {text}")
            raise
        self.timings[name] = self._clock() - start
        if status is not None:
            status.stop()
        detail = f": {handle.detail}" if handle.detail else ""
        self._line(f"✓ {name} ({self.timings[name]:.2f}s){detail}")


class Step:
    """What a running step can report: ``detail`` is shown after its ✓."""

    __slots__ = ("detail",)

    def __init__(self) -> None:
        self.detail = ""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, AlpacaMdError):
        return str(exc)
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted"
    name = type(exc).__name__
    if name == "StopRequested":
        return "interrupted"
    return f"{name}: {exc}" if str(exc) else name
