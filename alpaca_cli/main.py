"""The ``alpaca-md`` application: the table of contents of the CLI, and its one error handler.

Each subcommand lives in its own module under :mod:`alpaca_cli.commands`; those modules import
nothing heavy at module level (no dapr, grpc, httpx, pydantic, websockets, rich.live), so that
``alpaca-md --help`` starts about as fast as a bare Typer app.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from alpaca_cli import __version__
from alpaca_cli.commands import (
    auth,
    build,
    connect,
    deploy,
    dev,
    list_cmd,
    publish,
    run,
    subscribe,
    tail,
    teardown,
)
from alpaca_cli.commands._common import GlobalOptions, JsonOption, VerboseOption
from alpaca_cli.errors import AlpacaMdError, ExitCode

EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 unexpected internal error; 2 bad usage or invalid input; "
    "3 platform unreachable (gateway or sidecar); 4 credentials refused (gateway 401, "
    "Alpaca 402/406/409); 5 the platform refused the command; 6 no reply in time; "
    "7 smoke check failed (run --min-frames); 130 interrupted."
)

app = typer.Typer(
    name="alpaca-md",
    help=(
        "Bring up a live Alpaca crypto market-data stream through the virtufin platform, "
        "show that data flows, and take it all down again.\n\n" + EXIT_CODES_HELP
    ),
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

# The pipeline, in the order an operator runs it by hand.
app.command("build", epilog=EXIT_CODES_HELP)(build.command)
app.command("deploy", epilog=EXIT_CODES_HELP)(deploy.command)
app.command("connect", epilog=EXIT_CODES_HELP)(connect.command)
app.command("publish", epilog=EXIT_CODES_HELP)(publish.command)
app.command("auth", epilog=EXIT_CODES_HELP)(auth.command)
app.command("subscribe", epilog=EXIT_CODES_HELP)(subscribe.command)
app.command("tail", epilog=EXIT_CODES_HELP)(tail.command)
app.command("list", epilog=EXIT_CODES_HELP)(list_cmd.command)
app.command("teardown", epilog=EXIT_CODES_HELP)(teardown.command)
# Everything at once.
app.command("run", epilog=EXIT_CODES_HELP)(run.command)
# The embedded platform and Alpaca stream server.
app.add_typer(dev.app, name="dev")


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"alpaca-md {__version__}\n")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    json_output: JsonOption = False,
    verbose: VerboseOption = 0,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Global options apply to every subcommand; each subcommand also accepts them itself."""
    ctx.obj = GlobalOptions(json=json_output, verbose=verbose)


def main() -> None:
    """Console-script entry point: run the app, map our error tree to one line and an exit code."""
    try:
        app(standalone_mode=True)
    except AlpacaMdError as exc:  # pragma: no cover - the commands report their own errors
        sys.stderr.write(f"Error: {exc}\n")
        sys.exit(int(exc.exit_code))
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        sys.exit(int(ExitCode.INTERRUPTED))
