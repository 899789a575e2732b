"""``alpaca-md connect``: the Typer wrapper of :func:`alpaca_cli.steps.connect.connect_stream`.

What the step does, and why, is in its module's docstring; here only the options are parsed
and the result rendered.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from alpaca_cli.commands._common import CONTROLLER, FILES, render, takes

if TYPE_CHECKING:
    from alpaca_cli.runtime import Invocation


@takes("stream_url", *CONTROLLER, *FILES)
def command(
    invocation: Invocation,
    no_reconnect: Annotated[
        bool,
        typer.Option(
            "--no-reconnect",
            help="Ask the WebSocketManager not to reconnect a dropped connection.",
        ),
    ] = False,
    old_url: Annotated[
        str | None,
        typer.Option("--url", hidden=True, help="Old spelling of --alpaca-url."),
    ] = None,
) -> None:
    """Open the Alpaca WebSocket through the controller worker (its `create` command).

    Prints the connection id and records it in the state file. Alpaca closes a connection
    that does not authenticate within 10 s: run `alpaca-md auth` right after.

    Example: alpaca-md connect --alpaca-url wss://stream.data.alpaca.markets/v1beta3/crypto/us
    """
    from alpaca_cli.steps.connect import connect_stream

    overrides: dict[str, Any] = {}
    if old_url is not None and invocation.options.stream_url is None:
        # --url was this option's name before deploy and run gave --url another meaning.
        overrides["stream_url"] = old_url
    with invocation.open(**overrides) as rt:
        result = connect_stream(rt, auto_reconnect=not no_reconnect)
    render(invocation, result, lambda r: sys.stdout.write(f"{r.connection_id}\n"))
