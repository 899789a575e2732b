"""Options and plumbing shared by every subcommand: declared once, gathered once.

sqlite-utils gives every command the same output options with one decorator; :func:`takes` is
ours. A command names the configuration options it accepts (``@takes("state", "timeout")``);
the decorator adds them (and ``--json``/``-v``) to the command's Typer signature, gathers what
was given into one :class:`~alpaca_cli.runtime.Invocation` (root ``--json``/``-v`` merged in, so
``alpaca-md --json list`` and ``alpaca-md list --json`` both work), runs the command with it, and
turns our error tree into one ``Error:`` line and its exit code. No command forwards options
by hand.

It is also the one place every command gets the same interrupt and stderr behaviour:

- **Signals.** The command runs inside a :class:`~alpaca_cli.signals.SignalGuard`, whose stop
  event the :class:`Invocation` carries to every runtime it opens. The first Ctrl+C or SIGTERM
  only sets it: a hung gateway call is abandoned and a reply wait ends, each with
  :class:`~alpaca_cli.errors.Interrupted` raised by our own code (never into gRPC/httpx); the
  step's clean-up calls then get a short budget; the command exits 130 either way. A second
  signal raises :class:`~alpaca_cli.signals.ForceQuit`: exit 130 at once.
- **Secrets.** Every ``Error:`` line is redacted with the secrets of the invocation's runtimes
  (raw and base64), so an error body that echoes a key cannot print it.
- **stderr.** A closed stderr (``2>&1 | head``) never raises out of a progress line: the
  clean-up that follows must still run (:class:`SafeStream`).

Configuration options default to ``None`` ("not given") and carry no ``envvar=``: the
environment, ``.env`` and settings layers are resolved by :mod:`alpaca_cli.config`, which also
records where each value came from (``-v``).

Only typer and the standard library load at import time: ``alpaca-md --help`` stays light.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any, Final, NoReturn, TextIO, TypeVar

import typer

from alpaca_cli.commands._options import GlobalOptions, JsonOption, VerboseOption
from alpaca_cli.errors import AlpacaMdError, ExitCode
from alpaca_cli.redact import error_text

if TYPE_CHECKING:
    from alpaca_cli.redact import Redactor
    from alpaca_cli.runtime import Invocation

F = TypeVar("F", bound=Callable[..., Any])


def fail(exc: AlpacaMdError, redactor: Redactor | None = None) -> NoReturn:
    """Print one ``Error: ...`` line (secrets masked) to stderr and exit with the error's code."""
    say(f"Error: {error_text(exc, redactor)}")
    raise typer.Exit(int(exc.exit_code))


def say(line: str) -> None:
    """One diagnostic line on stderr that never raises (stderr may be a closed pipe)."""
    with suppress(OSError, ValueError):
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


@contextmanager
def reported_errors(redactor: Redactor | None = None) -> Iterator[None]:
    """Turn our error tree into one stderr line and its exit code; Ctrl+C into 130."""
    from alpaca_cli.signals import ForceQuit

    try:
        yield
    except AlpacaMdError as exc:
        fail(exc, redactor)
    except (KeyboardInterrupt, ForceQuit):
        say("Interrupted.")
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None


class SafeStream:
    """A text stream whose ``write``/``flush`` never raise: after the first failure (the reader
    closed the pipe: ``alpaca-md run 2>&1 | head``) it drops what it is given.

    Why: a progress line is never worth more than the clean-up after it; a BrokenPipeError
    out of ``Tearing down...`` used to skip the teardown itself and leave the worker running.
    Everything else (``isatty``, ``fileno``, ``encoding``) is the wrapped stream's.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self.broken = False
        """True once a write or flush failed: nothing more reaches the stream."""

    def write(self, text: str) -> int:
        if not self.broken:
            try:
                return self._stream.write(text)
            except (OSError, ValueError):
                self._break()
        return len(text)

    def flush(self) -> None:
        if not self.broken:
            try:
                self._stream.flush()
            except (OSError, ValueError):
                self._break()

    def _break(self) -> None:
        self.broken = True
        # The interpreter flushes stderr at exit too: point the descriptor at /dev/null.
        from alpaca_cli.output import to_devnull

        to_devnull(self._stream)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextmanager
def safe_stderr() -> Iterator[None]:
    """``sys.stderr`` is a :class:`SafeStream` inside the block (nested blocks reuse it)."""
    saved = sys.stderr
    if isinstance(saved, SafeStream):
        yield
        return
    sys.stderr = SafeStream(saved)
    try:
        yield
    finally:
        sys.stderr = saved


_CTX = inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=typer.Context)
_OUTPUT = (
    inspect.Parameter(
        "json_output", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=JsonOption
    ),
    inspect.Parameter(
        "verbose", inspect.Parameter.KEYWORD_ONLY, default=0, annotation=VerboseOption
    ),
)


def _completion_of(f: Any) -> Callable[..., list[str]] | None:
    """<TAB> for a table option: its choices (a list option completes after its last comma),
    or the topics the state and settings name."""
    from alpaca_cli.commands import _completion

    if f.choices:
        return _completion.choices(f.choices, several=f.kind is list)
    if f.options_name == "topic":
        return _completion.complete_topics
    return None


def takes(*names: str) -> Callable[[F], F]:
    """Declare that a command takes these configuration options (keys of :data:`SHARED`).

    The decorated function's first parameter receives the :class:`Invocation`; its other
    parameters are its own Typer options and arguments. Errors of our tree raised inside it
    become one ``Error:`` line and the error's exit code.
    """
    from alpaca_cli.config import FIELDS

    # The configuration table declares each option once (flag, help, metavar, type).
    table = {f.options_name: f for f in FIELDS if f.flag is not None}
    unknown = [name for name in names if name not in table]
    if unknown:  # a programming error, caught by the import of the command module
        raise ValueError(f"unknown shared options: {unknown}")

    def decorate(fn: F) -> F:
        # The first parameter (the Invocation) is annotated for type checkers only; the others
        # are the command's own Typer options, whose string annotations Typer needs evaluated.
        own = [
            p.replace(annotation=eval(p.annotation, fn.__globals__))
            if isinstance(p.annotation, str)
            else p
            for p in list(inspect.signature(fn).parameters.values())[1:]
        ]
        shared = [
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=None,
                annotation=Annotated[
                    f.annotation,
                    typer.Option(
                        *f.param_decls,
                        help=f.help,
                        metavar=f.metavar,
                        show_default=False,
                        autocompletion=_completion_of(f),
                    ),
                ],
            )
            for name, f in table.items()
            if name in names
        ]

        def command(ctx: typer.Context, **kwargs: Any) -> Any:
            from alpaca_cli.config import ConfigOptions
            from alpaca_cli.runtime import Invocation

            root = ctx.find_object(GlobalOptions) or GlobalOptions()
            json_output = bool(kwargs.pop("json_output")) or root.json
            verbose = max(int(kwargs.pop("verbose")), root.verbose)
            given = {name: kwargs.pop(name) for name in names}
            return _guarded(
                lambda stop, redactor: fn(
                    Invocation(
                        ConfigOptions(**given),
                        json=json_output,
                        verbose=verbose,
                        stop=stop,
                        redactor=redactor,
                    ),
                    **kwargs,
                )
            )

        command.__name__ = fn.__name__
        command.__qualname__ = fn.__qualname__
        command.__module__ = fn.__module__
        command.__doc__ = fn.__doc__
        command.__signature__ = inspect.Signature([_CTX, *own, *shared, *_OUTPUT])  # type: ignore[attr-defined]
        return command  # type: ignore[return-value]

    return decorate


def _guarded(call: Callable[[Any, Redactor], Any]) -> Any:
    """``call(stop, redactor)`` under the one signal strategy, a safe stderr and the one error
    handler (see the module docstring); a command a signal reached exits 130.

    Commands with a stop policy of their own (``run``, ``tail``) nest their own guard inside
    this one: theirs handles the signals while it is installed.
    """
    from alpaca_cli.errors import Interrupted
    from alpaca_cli.redact import Redactor
    from alpaca_cli.signals import SignalGuard

    redactor = Redactor()
    with safe_stderr(), reported_errors(redactor), SignalGuard() as guard:
        try:
            result = call(guard.stop, redactor)
        except BrokenPipeError:
            # The reader of stdout left (`alpaca-md list | head -1`): not an error.
            from alpaca_cli.output import silence_stdout

            silence_stdout(sys.stdout)
            return None
        except AlpacaMdError as exc:
            if guard.interrupted and not isinstance(exc, Interrupted):
                # Whatever failed after the signal failed because of it: say both.
                raise Interrupted(f"{guard.reason}: {error_text(exc, redactor)}") from exc
            raise
        if guard.interrupted:
            raise Interrupted(f"{guard.reason}; the command finished first.")
        return result


def render(
    invocation: Invocation,
    result: Any,
    show: Callable[[Any], object],
    *,
    to_json: Callable[[Any], object] | None = None,
) -> None:
    """Print a step's result the way ``--json`` asks: JSON on stdout, or ``show(result)``.

    Every step command ends this way, so the choice between JSON and text is made here once.
    """
    if invocation.json:
        from alpaca_cli.output import write_json

        write_json(to_json(result) if to_json is not None else asdict(result))
    else:
        show(result)


BUS: Final = ("bus", "api_grpc", "api_grpc_tls", "pubsub")
"""The options of every command that opens the bus: which one, and where."""
CONTROLLER: Final = (*BUS, "command_topic", "reply_topic", "timeout")
"""The options of every command that talks to the controller worker over the bus."""
FILES: Final = ("state", "settings", "env_file")
"""The options every command takes: where its state, settings and ``.env`` are."""
