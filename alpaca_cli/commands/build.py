"""``alpaca-md build``: the Typer wrapper of :func:`alpaca_cli.steps.build.build_worker`.

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


@takes("project", "state", "settings", "env_file")
def command(
    invocation: Invocation,
    output: Annotated[
        Path | None,
        typer.Option(
            "--out-dir",
            metavar="DIR",
            help="Output directory [default build/worker].",
            show_default=False,
        ),
    ] = None,
    old_output: Annotated[
        Path | None,
        # The old spelling; hidden because `-o` means a format elsewhere (tail --output).
        typer.Option("--output", "-o", hidden=True, help="Old spelling of --out-dir."),
    ] = None,
) -> None:
    """Build the controller worker package (worker.zip) with `dotnet publish`.

    Records the package path and its sha256 in the state file for `deploy`.
    Without the .NET SDK, skip this and use `deploy --package` or `deploy --package-url`.

    Example: alpaca-md build --project dotnet/Virtufin.Examples.WebSocketManagerController
    """
    from alpaca_cli.steps.build import build_worker

    with invocation.open() as rt:
        result = build_worker(
            rt, project=invocation.options.project, output_dir=output or old_output
        )
    render(
        invocation, result, lambda r: sys.stdout.write(f"{r.package_path}\t{r.package_sha256}\n")
    )
