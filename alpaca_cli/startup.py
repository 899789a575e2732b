"""The garbage collector during start-up: collect rarely while the imports run, then as usual.

Why: starting a command is mostly imports (typer, httpx, grpc, the Dapr SDK, the platform's
servers), which allocate hundreds of thousands of objects that live as long as the process.
With CPython's default threshold a collection runs every 700 net allocations and the older
generations are re-scanned again and again: ~15-20 % of import time (``make bench``:
``startup``; measured on ``dev up``'s imports). :func:`begin` raises the first generation's
threshold; :func:`end`, once a long-running process is serving or streaming, freezes what
start-up allocated (never scanned again) and restores the threshold it found.

Safe by construction: a process that never calls :func:`end` still collects, only less often.

:func:`leaving` does the same for the way out: the interpreter's last collection at exit
otherwise scans every object start-up made (~40 ms of a short command such as ``list``).
"""

from __future__ import annotations

import gc
from typing import Final

__all__ = ["STARTUP_THRESHOLD", "begin", "end", "leaving"]

STARTUP_THRESHOLD: Final = 100_000
"""Net allocations between two collections of the youngest generation during start-up."""

_saved: tuple[int, int, int] | None = None


def begin() -> None:
    """Collect rarely from now on (idempotent); :func:`end` undoes it."""
    global _saved
    if _saved is not None:
        return
    gen0, gen1, gen2 = gc.get_threshold()
    _saved = (gen0, gen1, gen2)
    gc.set_threshold(max(gen0, STARTUP_THRESHOLD), gen1, gen2)


def end() -> None:
    """Start-up is over: freeze its objects and collect as before :func:`begin` (idempotent;
    nothing to do when :func:`begin` was not called)."""
    global _saved
    if _saved is None:
        return
    gc.freeze()
    gc.set_threshold(*_saved)
    _saved = None


def leaving() -> None:
    """The command is done and the process exits: freeze every object so the interpreter's
    final collection skips them.

    Nothing is lost: every file, channel and subscription of ours is closed explicitly before
    this (context managers, the runtime's exit stack), and Python never promised finalizers
    of objects still alive at exit anyway.
    """
    gc.freeze()
