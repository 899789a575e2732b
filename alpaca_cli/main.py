"""The ``alpaca-md`` application: the table of contents of the CLI, and its one error handler.

Each subcommand lives in its own module under :mod:`alpaca_cli.commands`. The group below
imports a command's module only when that command runs or shows its help: ``alpaca-md --help``
lists the commands from :data:`COMMANDS` alone, so it costs about what a bare Typer app costs
(``make bench``: ``startup``). ``tests/test_main.py`` checks that each one-line summary here is
the first line of its command's docstring, so the two cannot drift.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Annotated, Any, Final

import typer
from typer._click.exceptions import NoArgsIsHelpError, UsageError
from typer.core import TyperGroup

from alpaca_cli import __version__
from alpaca_cli.commands._options import GlobalOptions, JsonOption, VerboseOption

EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 unexpected internal error; 2 bad usage or invalid input; "
    "3 platform unreachable (gateway or sidecar); 4 credentials refused (gateway 401, "
    "Alpaca 402/406/409); 5 the platform refused the command; 6 no reply in time; "
    "7 smoke check failed (run --min-frames); 130 interrupted."
)

COMMANDS: Final[dict[str, tuple[str, str]]] = {
    # The pipeline, in the order an operator runs it by hand.
    "build": ("build", "Build the controller worker package (worker.zip) with `dotnet publish`."),
    "deploy": (
        "deploy",
        "Create and start the WebSocketManagerController worker through the gateway.",
    ),
    "connect": (
        "connect",
        "Open the Alpaca WebSocket through the controller worker (its `create` command).",
    ),
    "publish": (
        "publish",
        "Publish every frame of the recorded connection to a topic (the controller's `publish`).",
    ),
    "auth": (
        "auth",
        "Authenticate the recorded connection with ALPACA_API_KEY / ALPACA_API_SECRET.",
    ),
    "subscribe": (
        "subscribe",
        "Subscribe the recorded connection to a channel's symbols (additive).",
    ),
    "unsubscribe": (
        "unsubscribe",
        "Unsubscribe the recorded connection from symbols; prints the confirmed remaining set.",
    ),
    "tail": (
        "tail",
        "Print the messages published to a topic, one line each, until Ctrl+C or a limit.",
    ),
    "book": (
        "book",
        "Show one symbol's L2 order book live: a ladder on a terminal, NDJSON when piped.",
    ),
    "list": ("list_cmd", "List the platform's WebSocket connections and workers."),
    "teardown": ("teardown", "Disconnect, stop and delete what the state file names; idempotent."),
    "doctor": (
        "doctor",
        "Check the platform, the bus, the keys, the stream URL and the state file, in order.",
    ),
    # Everything at once.
    "run": (
        "run",
        "Deploy, connect, authenticate, subscribe and watch the stream live; then tear it all "
        "down.",
    ),
    # The embedded platform and Alpaca stream server (a group of its own).
    "dev": (
        "dev",
        "Run the embedded virtufin platform and an Alpaca-compatible stream server locally.",
    ),
}
"""name -> (module under ``alpaca_cli.commands``, one-line summary for ``--help``)."""


def load_command(name: str) -> Any:
    """The Click command (or group, for ``dev``) behind ``name``, importing its module now."""
    module_name, _ = COMMANDS[name]
    module = importlib.import_module(f"alpaca_cli.commands.{module_name}")
    if name == "dev":
        return typer.main.get_command(module.app)
    one = typer.Typer(rich_markup_mode=None, pretty_exceptions_enable=False, add_completion=False)
    one.command(name, epilog=EXIT_CODES_HELP)(module.command)
    return typer.main.get_command(one)


class OneLineUsageError(UsageError):
    """A usage error shown as one line, like every other error of the tool.

    Click prints the usage block, a hint line and the error: three lines an operator has to read
    past in a CI log. This keeps Click's message and exit code 2 and folds the hint into it.
    (Typer 0.28, which ``pyproject.toml`` pins, vendors Click as ``typer._click``.)
    """

    def __init__(self, error: UsageError, command_path: str) -> None:
        super().__init__(error.format_message(), error.ctx)
        self.command_path = command_path

    def show(self, file: IO[Any] | None = None) -> None:
        text = " ".join(self.format_message().split()).rstrip(".")
        (file or sys.stderr).write(f"Error: {text}; see '{self.command_path} -h'.\n")


@contextmanager
def _one_line_usage(fallback: Callable[[], str]) -> Iterator[None]:
    """Re-raise a usage error as :class:`OneLineUsageError` (``no_args_is_help`` aside).

    ``fallback()`` names the command when Click's parser raised without a context (it does for
    "requires an argument" and a few others).
    """
    try:
        yield
    except (OneLineUsageError, NoArgsIsHelpError):
        raise
    except UsageError as exc:
        path = exc.ctx.command_path if exc.ctx is not None else fallback()
        raise OneLineUsageError(exc, path) from None


class LazyGroup(TyperGroup):
    """A command group that imports a command's module only when the command is used.

    Usage errors of the group and of every command under it (parsing, conversion, our own
    ``BadParameter`` callbacks) are raised inside :meth:`make_context` or :meth:`invoke`, so both
    fold them into :class:`OneLineUsageError`, whichever entry point (console script or a test's
    ``CliRunner``) runs the app.
    """

    def make_context(self, info_name: str | None, args: list[str], *a: Any, **k: Any) -> Any:
        with _one_line_usage(lambda: info_name or "alpaca-md"):
            return super().make_context(info_name, args, *a, **k)

    def invoke(self, ctx: Any) -> Any:
        argv = [*ctx._protected_args, *ctx.args]
        with _one_line_usage(lambda: self._deepest_path(ctx, argv)):
            return super().invoke(ctx)

    def _deepest_path(self, ctx: Any, argv: list[str]) -> str:
        """``alpaca-md dev up`` for ``["dev", "up", "--x"]``: the command the words name."""
        path, command = [ctx.command_path], self
        for word in argv:
            sub = command.get_command(ctx, word) if isinstance(command, TyperGroup) else None
            if sub is None:
                break
            path.append(word)
            command = sub
        return " ".join(path)

    def list_commands(self, ctx: Any) -> list[str]:
        return [*COMMANDS, *(name for name in self.commands if name not in COMMANDS)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        command = self.commands.get(cmd_name)
        if command is None and cmd_name in COMMANDS:
            command = self.commands[cmd_name] = load_command(cmd_name)
        return command

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """The command list from :data:`COMMANDS`, without importing any command module."""
        width = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = []
        for name, (_, summary) in COMMANDS.items():
            rows.append((name, summary if len(summary) <= width else _shorten(summary, width)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _shorten(text: str, width: int) -> str:
    """Click's own rule for a short help: whole words, then ``...``."""
    words, out = text.split(), ""
    for word in words:
        if len(out) + len(word) + 1 + 3 > width:
            break
        out = f"{out} {word}" if out else word
    return out + "..."


app = typer.Typer(
    name="alpaca-md",
    cls=LazyGroup,
    help=(
        "Bring up a live Alpaca crypto market-data stream through the virtufin platform, "
        "show that data flows, and take it all down again.\n\n" + EXIT_CODES_HELP
    ),
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


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
    from alpaca_cli import startup

    startup.begin()  # the long-running commands call startup.end() once they serve or stream
    try:
        _run_app()
    finally:
        startup.leaving()


def _run_app() -> None:
    try:
        app(standalone_mode=True)
    except KeyboardInterrupt:
        from alpaca_cli.errors import ExitCode

        sys.stderr.write("Interrupted.\n")
        sys.exit(int(ExitCode.INTERRUPTED))
    except Exception as exc:  # pragma: no cover - the commands report their own errors
        # The error tree is imported here, not at the top: --help never needs it.
        from alpaca_cli.errors import AlpacaMdError

        if not isinstance(exc, AlpacaMdError):
            raise
        from alpaca_cli.redact import error_text

        sys.stderr.write(f"Error: {error_text(exc)}\n")
        sys.exit(int(exc.exit_code))
