"""``alpaca-md dev``: the embedded platform and the Alpaca stream server, for offline work.

The modules behind these commands (``alpaca_cli.devstack``) are imported only when a ``dev``
command actually runs.
"""

from __future__ import annotations

import typer

from alpaca_cli.commands import dev_feed, dev_up

app = typer.Typer(
    help="Run the embedded virtufin platform and an Alpaca-compatible stream server locally.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.command("feed")(dev_feed.command)
app.command("up")(dev_up.command)
