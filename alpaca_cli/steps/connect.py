"""``alpaca-md connect``: open the upstream Alpaca WebSocket through the controller worker.

The step (:func:`connect_stream`) locks the state file and records a pending entry, sends the
controller's ``create`` with the stream URL (settings ``url``, ``ALPACA_STREAM_URL`` or
``--url``), tags the new connection, and records the connection id and URL in the state file.
Alpaca closes a connection that does not authenticate within 10 s, so the operator is told to
run ``auth`` promptly (``run`` does it for them).

:func:`require_connection` is shared by the commands that act on the recorded connection.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from alpaca_cli.errors import StateError
    from alpaca_cli.platform.records import ConnectionInfo
    from alpaca_cli.runtime import Runtime
    from alpaca_cli.state import ConnectionRecord

AUTH_DEADLINE_WARNING: Final = (
    "Alpaca closes a connection that does not authenticate within 10 s: "
    "run `alpaca-md auth` now (after `alpaca-md publish` if you want to see its answer)."
)


@dataclass(frozen=True, slots=True)
class ConnectResult:
    """The connection ``connect`` opened."""

    connection_id: str
    url: str
    auto_reconnect: bool
    replaced_connection_id: str | None = None


def require_connection(rt: Runtime) -> ConnectionRecord:
    """The connection the state file names.

    Raises:
        UsageError: there is none (the hint says to run ``connect``).
        StateError: the state file is corrupt.
    """
    from alpaca_cli.errors import UsageError

    state = rt.store.read()
    if state is None or state.connection is None:
        raise UsageError(
            f"No connection in the state file {rt.store.path}.",
            hint="Run `alpaca-md connect` first (or pass --state to use another state file).",
        )
    return state.connection


def connect_stream(
    rt: Runtime,
    *,
    auto_reconnect: bool = True,
    warn_deadline: bool = True,
    on_created: Callable[[str], None] | None = None,
) -> ConnectResult:
    """Open the upstream WebSocket through the controller and record it.

    Check before acting: the state file is read and locked before anything is opened (a corrupt
    or unwritable one fails with nothing created, hole 2), and a pending entry with a fresh
    intent id is written first. The connection is tagged right after ``create`` answers
    (``websocketmanager.SetTags``: ownership + virtufin-tui tags, :mod:`alpaca_cli.steps.tags`),
    so ``teardown --orphans`` finds it whatever happens next. A ``create`` that gets no reply
    is looked for (our tags, or a new connection to our URL) before it is sent once more
    (:meth:`~alpaca_cli.platform.controller.ControllerClient.create`): never two connections
    for one ``connect``. A connection that cannot be recorded is closed again, and the error
    says so.

    A connection recorded earlier is replaced in the state file and closed once the new one is
    open (a warning if that fails: it may still be open on the platform). Publish topic,
    subscriptions and authentication belong to a connection, so they are reset.

    ``warn_deadline`` tells a hand-operator that Alpaca's 10 s auth deadline is running; a
    caller that authenticates at once itself (``run``) turns it off. ``on_created`` gets the
    connection id as soon as it exists (``run``'s in-memory ownership).

    Raises:
        SidecarUnreachable, CommandRefused, ReplyTimeout: from the controller RPC.
        StateError: the state file is corrupt, locked or cannot be written (nothing is left
            open).
    """
    from alpaca_cli.errors import AlpacaMdError, CommandRefused, StateError
    from alpaca_cli.state import ConnectionRecord, PendingRecord
    from alpaca_cli.steps.tags import TAG_INTENT, connection_tags, is_ours, new_intent

    url = rt.config.stream_url
    replaced: str | None = None
    failure: AlpacaMdError | None = None
    with rt.store.transaction() as state:
        controller = rt.controller()
        gateway = rt.gateway()
        intent = new_intent()
        tags = connection_tags(state.run_id, rt.store.path, intent, url)
        existed = rt.store.path.exists()
        state.pending.append(PendingRecord(kind="connection", intent=intent, url=url))
        rt.store.write(state)

        def listed() -> list[ConnectionInfo] | None:
            try:
                return gateway.list_connections()
            except AlpacaMdError as exc:
                rt.log(f"cannot list connections through the gateway ({exc})")
                return None

        snapshot = listed()
        before = None if snapshot is None else {c.id for c in snapshot}

        def find() -> str | None:
            """A connection our unanswered ``create`` opened: tagged with our intent, or (the
            controller takes no tags) a new, untagged one to our URL."""
            now = listed() or []
            for conn in now:
                if conn.tags.get(TAG_INTENT) == intent:
                    return conn.id
            if before is None:
                return None
            fresh = [
                c.id
                for c in now
                if c.id not in before and c.url == url and not is_ours(dict(c.tags))
            ]
            return fresh[0] if len(fresh) == 1 else None

        rt.progress(f"Connecting to {url} through the controller")
        try:
            connection_id = controller.create(
                url, auto_reconnect=auto_reconnect, tags=tags, find=find
            )
        except AlpacaMdError as exc:
            # create found nothing of ours (or was refused): nothing is pending any more.
            state.pending = [p for p in state.pending if p.intent != intent]
            if not existed:
                rt.store.clear()
            failure = exc
        else:
            if on_created is not None:
                on_created(connection_id)
            try:
                gateway.set_connection_tags(connection_id, tags)
            except AlpacaMdError as exc:
                rt.warn(
                    f"could not tag connection {connection_id} ({exc}); it is recorded in "
                    f"{rt.store.path}, but `alpaca-md teardown --orphans` cannot find it"
                )
            if state.connection is not None and state.connection.id != connection_id:
                replaced = state.connection.id
            state.drop_connection()  # the new one has no topic, subscription or auth yet
            state.connection = ConnectionRecord(id=connection_id, url=url)
            state.pending = [p for p in state.pending if p.intent != intent]
            state.channel = None
            try:
                rt.store.write(state)
            except StateError as exc:
                raise _unrecorded(rt, connection_id, exc) from exc
    if failure is not None:
        raise failure
    if replaced is not None:
        # Once the state forgets it, no command (teardown included) can close it any more:
        # close it now rather than leave an orphan streaming on the platform.
        try:
            controller.disconnect(replaced)
            rt.progress(f"Closed connection {replaced}, which the state file named before")
        except AlpacaMdError as exc:
            if not (isinstance(exc, CommandRefused) and "not found" in exc.message.lower()):
                rt.warn(
                    f"the state file named connection {replaced} and closing it failed "
                    f"({exc}); it may still be open on the platform (`alpaca-md list` shows it)"
                )
    rt.progress(f"Connected: {connection_id}")
    if warn_deadline:
        rt.warn(AUTH_DEADLINE_WARNING)
    return ConnectResult(connection_id, url, auto_reconnect, replaced)


def _unrecorded(rt: Runtime, connection_id: str, exc: StateError) -> StateError:
    """The error for a connection that is open but could not be recorded, after closing it."""
    from alpaca_cli.errors import AlpacaMdError
    from alpaca_cli.steps.tags import undo_unrecorded

    def close() -> None:
        try:
            rt.controller().disconnect(connection_id)
        except AlpacaMdError:
            rt.gateway().disconnect(connection_id)

    return undo_unrecorded(
        exc, f"connection {connection_id}", close, undone="closed", finds="closes"
    )
