"""Options and plumbing shared by every subcommand.

Options are declared once as ``Annotated`` aliases so every command spells and documents them the
same way. Root options (``alpaca-md --json list``) and per-command options (``alpaca-md list
--json``) both work: :func:`merged` combines them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated, NoReturn

import typer

from alpaca_cli.errors import AlpacaMdError, ExitCode

JsonOption = Annotated[
    bool, typer.Option("--json", help="Write the result to stdout as JSON.")
]
VerboseOption = Annotated[
    int,
    typer.Option(
        "--verbose", "-v", count=True, help="Diagnostics on stderr (secrets redacted); repeat."
    ),
]


@dataclass(frozen=True, slots=True)
class GlobalOptions:
    """Options given before the subcommand name."""

    json: bool = False
    verbose: int = 0


def merged(ctx: typer.Context, json_output: bool, verbose: int) -> GlobalOptions:
    """Combine root-level and command-level ``--json`` / ``-v``."""
    root = ctx.find_object(GlobalOptions) or GlobalOptions()
    return GlobalOptions(json=root.json or json_output, verbose=max(root.verbose, verbose))


def fail(exc: AlpacaMdError) -> NoReturn:
    """Print one ``Error: ...`` line to stderr and exit with the error's code."""
    sys.stderr.write(f"Error: {exc}\n")
    raise typer.Exit(int(exc.exit_code))


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn our error tree into one stderr line and its exit code; Ctrl+C into 130."""
    try:
        yield
    except AlpacaMdError as exc:
        fail(exc)
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None


