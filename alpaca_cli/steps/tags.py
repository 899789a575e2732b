"""The tags alpaca-md puts on what it creates: ownership first, then virtufin-tui's conventions.

Why tags at all: a state file can be lost, corrupt, or written after a crash too late. Every
worker and connection therefore carries who made it (``created-by``), from which host and state
file, and the id of the *intent* recorded in that state file before it was created
(``alpaca-md-intent``, "intent before side effect", issue 11). ``teardown`` finds a pending
object by its intent tag, and ``teardown --orphans`` finds anything of ours that no state file
names. The TUI's World pane recognises connections tagged ``world``, ``universe``,
``world_source`` and ``publishing`` (the topic, while publishing), and workers by
``type``/``source`` (``spec/virtufin-platform.md``, "Tags"). Tags are metadata only: the
worker never sees them and the WSM never sends them upstream. Never a secret in a tag: the URL
is reduced to scheme, host and path.
"""

from __future__ import annotations

import socket
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from alpaca_cli.errors import StateError

__all__ = [
    "TAG_CREATED_BY",
    "TAG_CREATED_BY_VALUE",
    "TAG_HOST",
    "TAG_INTENT",
    "TAG_RUN_ID",
    "TAG_STATE",
    "TUI_PUBLISHING",
    "connection_tags",
    "is_ours",
    "new_intent",
    "undo_unrecorded",
    "worker_tags",
]

TAG_CREATED_BY: Final = "created-by"
TAG_CREATED_BY_VALUE: Final = "alpaca-md"
TAG_RUN_ID: Final = "alpaca-md-run-id"
TAG_HOST: Final = "alpaca-md-host"
TAG_STATE: Final = "alpaca-md-state"
TAG_INTENT: Final = "alpaca-md-intent"
"""The id of the state file's pending entry written before the object was created."""
TUI_PUBLISHING: Final = "publishing"
"""virtufin-tui: the topic a connection publishes to (empty = cleared, not publishing)."""

WORKER_TYPE: Final = "websocketmanagercontroller"
MAX_VALUE: Final = 1024


def new_intent() -> str:
    """A fresh intent id (this invocation's own: two invocations never share one)."""
    return uuid.uuid4().hex


def _ownership(run_id: str, state_path: Path, intent: str) -> dict[str, str]:
    return {
        TAG_CREATED_BY: TAG_CREATED_BY_VALUE,
        TAG_RUN_ID: run_id,
        TAG_HOST: socket.gethostname()[:MAX_VALUE],
        TAG_STATE: str(state_path.absolute())[:MAX_VALUE],
        TAG_INTENT: intent,
    }


def worker_tags(run_id: str, state_path: Path, intent: str | None = None) -> dict[str, str]:
    """Ownership tags plus the TUI's ``type``/``source`` of a worker."""
    tags = _ownership(run_id, state_path, intent or new_intent())
    tags.update({"type": WORKER_TYPE, "source": TAG_CREATED_BY_VALUE})
    return tags


def connection_tags(run_id: str, state_path: Path, intent: str, url: str) -> dict[str, str]:
    """Ownership tags plus the TUI's World-pane tags of an Alpaca stream connection.

    ``universe`` is the stream's path after the API version (``crypto/us``), ``world_source``
    the URL without credentials, query or fragment. ``publishing`` is set by ``publish``.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    clean = f"{parts.scheme}://{host}{port}{parts.path}"
    segments = [s for s in parts.path.split("/") if s]
    universe = "/".join(segments[1:]) if len(segments) > 1 else (segments[0] if segments else "")
    tags = _ownership(run_id, state_path, intent)
    tags.update(
        {
            "world": "alpaca",
            "universe": (universe or "crypto")[:MAX_VALUE],
            "world_source": clean[:MAX_VALUE],
        }
    )
    return tags


def is_ours(tags: object) -> bool:
    """Whether an object's tags say alpaca-md made it."""
    from collections.abc import Mapping

    return isinstance(tags, Mapping) and tags.get(TAG_CREATED_BY) == TAG_CREATED_BY_VALUE


def undo_unrecorded(
    exc: StateError, what: str, undo: Callable[[], object], *, undone: str, finds: str
) -> StateError:
    """The error for an object created but not recorded (the state write failed), after undoing
    it: an object nobody can find is worse than a failed step (holes 5, 16).

    ``what`` names the object (``worker ID``); ``undo`` removes it; ``undone`` says how
    (``deleted``, ``closed``); ``finds`` what ``teardown --orphans --yes`` does to it when the
    undo fails too (it is tagged, so that finds it).
    """
    from alpaca_cli.errors import AlpacaMdError, StateError

    try:
        undo()
        done = f"{what} was {undone} again, nothing is left"
    except AlpacaMdError as cleanup:
        done = (
            f"{what} could not be {undone} either ({cleanup}); it is tagged: "
            f"`alpaca-md teardown --orphans --yes` {finds} it"
        )
    return StateError(f"{exc.message} The new {done}.", hint=exc.hint)
