"""``alpaca-md connect``: open the upstream Alpaca WebSocket through the controller worker.

The step (:func:`connect_stream`) sends the controller's ``create`` with the stream URL (settings
``url``, ``ALPACA_STREAM_URL`` or ``--url``) and records the connection id and URL in the state
file. Alpaca closes a connection that does not authenticate within 10 s, so the operator is told
to run ``auth`` promptly (``run`` does it for them).

:func:`require_connection` is shared by the commands that act on the recorded connection.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
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
    rt: Runtime, *, auto_reconnect: bool = True, warn_deadline: bool = True
) -> ConnectResult:
    """Open the upstream WebSocket through the controller and record it.

    A connection recorded earlier is replaced in the state file and closed once the new one is
    open (a warning if that fails: it may still be open on the platform). Publish topic,
    subscriptions and authentication belong to a connection, so they are reset.

    ``warn_deadline`` tells a hand-operator that Alpaca's 10 s auth deadline is running; a
    caller that authenticates at once itself (``run``) turns it off.

    Raises:
        SidecarUnreachable, CommandRefused, ReplyTimeout: from the controller RPC.
        StateError: the state file is corrupt or locked.
    """
    from alpaca_cli.errors import CommandRefused
    from alpaca_cli.state import ConnectionRecord

    url = rt.config.stream_url
    controller = rt.controller()
    rt.progress(f"Connecting to {url} through the controller")
    connection_id = controller.create(url, auto_reconnect=auto_reconnect)
    replaced: str | None = None
    with rt.store.transaction() as state:
        if state.connection is not None and state.connection.id != connection_id:
            replaced = state.connection.id
        state.connection = ConnectionRecord(id=connection_id, url=url)
        state.publish_topic = None
        state.subscriptions = {}
        state.channel = None
        state.authenticated_at = None
    if replaced is not None:
        # Once the state forgets it, no command (teardown included) can close it any more:
        # close it now rather than leave an orphan streaming on the platform.
        from alpaca_cli.errors import AlpacaMdError

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
