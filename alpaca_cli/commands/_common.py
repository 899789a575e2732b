"""Options and plumbing shared by every subcommand.

Options are declared once as ``Annotated`` aliases so every command spells and documents them the
same way. Root options (``alpaca-md --json list``) and per-command options (``alpaca-md list
--json``) both work: :func:`merged` combines them.

Configuration options default to ``None`` ("not given") and carry no ``envvar=``: the
environment, ``.env`` and settings layers are resolved by :mod:`alpaca_cli.config`, which also
records where each value came from (``-v``).

Stable API::

    JsonOption, VerboseOption, StateOption, SettingsOption, EnvFileOption, ApiUrlOption,
    TimeoutOption, PubsubOption, CommandTopicOption, ReplyTopicOption, TopicOption,
    ChannelOption, StreamUrlOption, ProjectOption
    GlobalOptions(json, verbose); merged(ctx, json_output, verbose) -> GlobalOptions
    open_runtime(ctx, *, json_output, verbose, state=None, settings=None, env_file=None,
                 api_url=None, timeout=None, pubsub=None, command_topic=None,
                 reply_topic=None, topic=None, channel=None, stream_url=None, symbols=None,
                 project=None) -> Runtime     # imports config/runtime lazily
    fail(exc) -> NoReturn; reported_errors() context manager
    run_step(rt, step, show, *, to_json=None) -> result   # the step commands' common ending
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer

from alpaca_cli.errors import AlpacaMdError, ExitCode

if TYPE_CHECKING:
    from collections.abc import Sequence

    from _typeshed import DataclassInstance

    from alpaca_cli.runtime import Runtime

R = TypeVar("R", bound="DataclassInstance")

JsonOption = Annotated[bool, typer.Option("--json", help="Write the result to stdout as JSON.")]
VerboseOption = Annotated[
    int,
    typer.Option(
        "--verbose", "-v", count=True, help="Diagnostics on stderr (secrets redacted); repeat."
    ),
]

StateOption = Annotated[
    Path | None,
    typer.Option(
        "--state",
        help="State file [env ALPACA_MD_STATE; default ./.alpaca-md/state.json].",
        show_default=False,
    ),
]
SettingsOption = Annotated[
    Path | None,
    typer.Option(
        "--settings",
        help="Stream settings JSON [env ALPACA_MD_SETTINGS; default ./settings/alpaca.json, "
        "else the packaged copy].",
        show_default=False,
    ),
]
EnvFileOption = Annotated[
    Path | None,
    typer.Option(
        "--env-file",
        help=".env file read below the environment [default ./.env when present].",
        show_default=False,
    ),
]
ApiUrlOption = Annotated[
    str | None,
    typer.Option(
        "--api-url",
        help="Gateway base URL [env VIRTUFIN_API_URL; default http://localhost:5001].",
        show_default=False,
    ),
]
TimeoutOption = Annotated[
    float | None,
    typer.Option(
        "--timeout",
        help="Seconds to wait for a reply [env ALPACA_MD_TIMEOUT; default 15].",
        show_default=False,
    ),
]
PubsubOption = Annotated[
    str | None,
    typer.Option(
        "--pubsub",
        help="Dapr pub/sub component name [env ALPACA_MD_PUBSUB; default pubsub].",
        show_default=False,
    ),
]
CommandTopicOption = Annotated[
    str | None,
    typer.Option(
        "--command-topic",
        help="Controller command topic [env ALPACA_MD_COMMAND_TOPIC; "
        "default command.websocketmanagercontroller].",
        show_default=False,
    ),
]
ReplyTopicOption = Annotated[
    str | None,
    typer.Option(
        "--reply-topic",
        help="Controller reply topic [env ALPACA_MD_REPLY_TOPIC; "
        "default response.websocketmanagercontroller].",
        show_default=False,
    ),
]
TopicOption = Annotated[
    str | None,
    typer.Option(
        "--topic",
        help="Topic the stream is published to [env ALPACA_MD_TOPIC; settings 'topic'].",
        show_default=False,
    ),
]
ChannelOption = Annotated[
    str | None,
    typer.Option(
        "--channel",
        help="Alpaca channel: trades, quotes, orderbooks, bars, updatedBars, dailyBars "
        "[env ALPACA_MD_CHANNEL; settings 'channel'].",
        show_default=False,
    ),
]
StreamUrlOption = Annotated[
    str | None,
    typer.Option(
        "--url",
        help="Alpaca stream URL, ws:// or wss:// [env ALPACA_STREAM_URL; settings 'url'].",
        show_default=False,
    ),
]
ProjectOption = Annotated[
    str | None,
    typer.Option(
        "--project",
        help="Controller worker project directory [env ALPACA_MD_PROJECT; settings 'project'].",
        show_default=False,
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


def open_runtime(
    ctx: typer.Context | None,
    *,
    json_output: bool = False,
    verbose: int = 0,
    state: Path | None = None,
    settings: Path | None = None,
    env_file: Path | None = None,
    api_url: str | None = None,
    timeout: float | None = None,
    pubsub: str | None = None,
    command_topic: str | None = None,
    reply_topic: str | None = None,
    topic: str | None = None,
    channel: str | None = None,
    stream_url: str | None = None,
    symbols: Sequence[str] | None = None,
    project: str | None = None,
) -> Runtime:
    """Resolve the configuration from the given options and build the invocation's runtime.

    Call it inside :func:`reported_errors` (it raises ``SettingsError``); close the runtime
    (``with``) when done. Root ``--json``/``-v`` are merged in when ``ctx`` is given.
    """
    from alpaca_cli.config import ConfigOptions
    from alpaca_cli.runtime import open_runtime as _open

    opts = (
        merged(ctx, json_output, verbose)
        if ctx is not None
        else GlobalOptions(json=json_output, verbose=verbose)
    )
    config_options = ConfigOptions(
        api_url=api_url,
        settings=settings,
        env_file=env_file,
        state=state,
        pubsub=pubsub,
        command_topic=command_topic,
        reply_topic=reply_topic,
        timeout=timeout,
        stream_url=stream_url,
        channel=channel,
        symbols=list(symbols) if symbols else None,
        topic=topic,
        project=project,
    )
    return _open(config_options, json=opts.json, verbose=opts.verbose)


def run_step(
    rt: Runtime,
    step: Callable[[Runtime], R],
    show: Callable[[R], object],
    *,
    to_json: Callable[[R], object] | None = None,
) -> R:
    """Run a command's step inside its runtime, then print the result the way ``--json`` asks.

    Every step command ends this way, so the choice between JSON and text (and closing the
    runtime before anything is printed) is made here once. Call it inside
    :func:`reported_errors` with the runtime :func:`open_runtime` returned.

    Args:
        rt: The invocation's runtime; closed when the step returns or raises.
        step: The command's plain step function.
        show: Prints the result as text (only without ``--json``).
        to_json: The result's JSON form [default ``dataclasses.asdict``].

    Returns:
        The step's result, for whatever the command does after printing it.
    """
    with rt:
        result = step(rt)
    if rt.json:
        from alpaca_cli.output import write_json

        write_json(to_json(result) if to_json is not None else asdict(result))
    else:
        show(result)
    return result
