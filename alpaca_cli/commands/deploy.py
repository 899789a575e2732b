"""``alpaca-md deploy``: the Typer wrapper of :func:`alpaca_cli.steps.deploy.deploy_worker`.

What the step does, and why, is in its module's docstring; here only the options are parsed
and the result rendered.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from alpaca_cli.commands._common import render, takes

if TYPE_CHECKING:
    from alpaca_cli.runtime import Invocation


@takes("api_url", "command_topic", "state", "settings", "env_file")
def command(
    invocation: Invocation,
    package: Annotated[
        Path | None,
        typer.Option(
            "--package",
            help="worker.zip to send (base64 content) [default: the package `build` made].",
            show_default=False,
        ),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(
            "--package-url",
            "--url",
            metavar="URL",
            help="Code-source URL the platform downloads the package from (--url: the old "
            "spelling).",
            show_default=False,
        ),
    ] = None,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace",
            "--force",
            help="Remove the worker the state file names (if it still exists) and deploy anew.",
        ),
    ] = False,
) -> None:
    """Create and start the WebSocketManagerController worker through the gateway.

    Sends `topics` and falls back to `topic` on an older platform. Refuses while the state file
    names a worker that still exists, unless --replace.

    Example: alpaca-md deploy --package build/worker/worker.zip
    """
    from alpaca_cli.steps.deploy import deploy_worker

    with invocation.open() as rt:
        result = deploy_worker(rt, package=package, url=url, replace=replace)
    render(invocation, result, lambda r: sys.stdout.write(f"{r.worker_id}\n"))
