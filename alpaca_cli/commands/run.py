"""``alpaca-md run``: the whole flow, watched live, torn down at the end whatever happens.

A thin Typer wrapper: it checks the flag combinations, gathers the options into a
:class:`~alpaca_cli.steps.run.RunOptions` (which holds the shared options as one
:class:`~alpaca_cli.runtime.Invocation`) and turns the :class:`~alpaca_cli.steps.run.Outcome`
of :func:`~alpaca_cli.steps.run.execute` into the exit code. The flow itself (steps, stream,
teardown, force-quit) is :mod:`alpaca_cli.steps.run`.

The module imports only typer and the standard library at import time, so that
``alpaca-md --help`` stays fast; the flow loads when the command runs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from alpaca_cli.commands._common import CONTROLLER, FILES, takes
from alpaca_cli.commands._completion import SymbolsToSubscribe

if TYPE_CHECKING:
    from alpaca_cli.runtime import Invocation

_NEWER = "Embedded platform: newer behaviour"
"""Help panel of the knobs that ``run --embedded`` passes to its ``dev up`` child."""


@takes("channels", "topic", "project", "api_url", "keepalive", *CONTROLLER, *FILES)
def command(
    invocation: Invocation,
    symbols: SymbolsToSubscribe = None,
    embedded: Annotated[
        bool,
        typer.Option(
            "--embedded",
            help="Start the embedded platform and a local Alpaca stream server for the run "
            "(no keys needed).",
        ),
    ] = False,
    alpaca_url: Annotated[
        str | None,
        typer.Option(
            "--alpaca-url",
            help="Alpaca stream URL to connect to (with --embedded: instead of the local server; "
            "uses ALPACA_API_KEY/ALPACA_API_SECRET).",
            show_default=False,
        ),
    ] = None,
    duration: Annotated[
        float,
        typer.Option("--duration", min=0, help="Stream for this many seconds; 0 = until Ctrl+C."),
    ] = 0.0,
    min_frames: Annotated[
        int,
        typer.Option(
            "--min-frames",
            min=0,
            help="Smoke check: every subscribed symbol needs at least N data messages, else "
            "exit 7.",
        ),
    ] = 0,
    report: Annotated[
        Path | None,
        typer.Option("--report", help="Write a JSON report here.", show_default=False),
    ] = None,
    stall_limit: Annotated[
        float,
        typer.Option(
            "--stall-limit", min=0, help="Report a stream silent for this many seconds; 0 = off."
        ),
    ] = 30.0,
    fail_on_stall: Annotated[
        bool,
        typer.Option(
            "--fail-on-stall",
            help="CI check: a stall beyond --stall-limit fails the run (exit 7).",
        ),
    ] = False,
    junit: Annotated[
        Path | None,
        typer.Option(
            "--junit",
            metavar="PATH",
            help="Write JUnit XML here: one testcase per step and per symbol's --min-frames check.",
            show_default=False,
        ),
    ] = None,
    connect_retry_for: Annotated[
        float,
        typer.Option(
            "--connect-retry-for",
            min=0,
            metavar="SECONDS",
            help="Retry Alpaca's 406 (connection limit) at the first auth for up to this many "
            "seconds, with jittered backoff; 0 = fail at once.",
        ),
    ] = 100.0,
    no_build: Annotated[
        bool, typer.Option("--no-build", help="Skip build; deploy the package built earlier.")
    ] = False,
    package: Annotated[
        Path | None,
        typer.Option("--package", help="Deploy this worker.zip (skips build).", show_default=False),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(
            "--package-url",
            "--url",
            metavar="URL",
            help="Deploy from this code-source URL (skips build; --url: the old spelling).",
            show_default=False,
        ),
    ] = None,
    replace: Annotated[
        bool,
        typer.Option("--replace", help="Remove a worker the state file still names first."),
    ] = False,
    drop_after: Annotated[
        float | None,
        typer.Option(
            "--drop-after",
            help="Embedded Alpaca server: drop each connection after this many seconds.",
            show_default=False,
        ),
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(
            "--rate", help="Embedded Alpaca server: messages per second.", show_default=False
        ),
    ] = None,
    symbol_limit: Annotated[
        int | None,
        typer.Option(
            "--symbol-limit",
            help="Embedded Alpaca server: most symbols per channel (405 above).",
            show_default=False,
        ),
    ] = None,
    connection_record_ttl: Annotated[
        float | None,
        typer.Option(
            "--connection-record-ttl",
            min=0.001,
            metavar="S",
            rich_help_panel=_NEWER,
            help="Embedded platform: the WSM drops a connection record S s after its last "
            "successful send (dev up --connection-record-ttl).",
            show_default=False,
        ),
    ] = None,
    drop_commands: Annotated[
        int | None,
        typer.Option(
            "--drop-commands",
            min=0,
            metavar="N",
            rich_help_panel=_NEWER,
            help="Embedded platform: the first N messages on each worker input topic are "
            "acked and dropped (dev up --drop-commands).",
            show_default=False,
        ),
    ] = None,
    reconnect_attempts: Annotated[
        int | None,
        typer.Option(
            "--reconnect-attempts",
            min=0,
            metavar="N",
            rich_help_panel=_NEWER,
            help="Embedded platform: the WSM gives up after N reconnects, DISCONNECTED for "
            "good (dev up --reconnect-attempts).",
            show_default=False,
        ),
    ] = None,
    lifecycle_names: Annotated[
        str | None,
        typer.Option(
            "--lifecycle-names",
            metavar="classic|spec|reference",
            rich_help_panel=_NEWER,
            help="Embedded platform: the lifecycle event-type family (dev up --lifecycle-names).",
            show_default=False,
        ),
    ] = None,
    owned_elsewhere: Annotated[
        float | None,
        typer.Option(
            "--owned-elsewhere",
            min=0,
            metavar="S",
            rich_help_panel=_NEWER,
            help="Embedded platform: calls on a new connection are refused as owned by another "
            "instance for S s (dev up --owned-elsewhere).",
            show_default=False,
        ),
    ] = None,
    duplicate_create: Annotated[
        bool,
        typer.Option(
            "--duplicate-create",
            rich_help_panel=_NEWER,
            help="Embedded platform: the gateway runs CreateWorker twice (dev up "
            "--duplicate-create).",
        ),
    ] = False,
) -> None:
    """Deploy, connect, authenticate, subscribe and watch the stream live; then tear it all down.

    Ctrl+C or SIGTERM stops the run and tears down (exit 130); a second Ctrl+C skips the
    teardown and prints the ids left behind. With --min-frames it is a CI smoke check (exit 7);
    --fail-on-stall adds a stall check (exit 7); --report writes a JSON report, --json prints
    it on stdout, --junit writes JUnit XML, and when GITHUB_STEP_SUMMARY is set a Markdown
    summary is appended to it. Every run ends with a summary on stderr: per symbol frames,
    rate (per streaming second), p50/p99 latency, longest gap and stale seconds.

    Example: alpaca-md run --embedded --duration 30
    """
    from alpaca_cli.errors import UsageError
    from alpaca_cli.steps.run import RunOptions, execute

    if package is not None and url is not None:
        raise UsageError("Give either --package or --package-url, not both.")
    for flag, path in (("--report", report), ("--junit", junit)):
        if path is not None and (problem := _unwritable(path)) is not None:
            # Found now, not after a whole run whose report would then be lost.
            raise UsageError(
                f"{flag} {path}: {problem}; fix: point it at a file in a writable directory."
            )
    if fail_on_stall and stall_limit == 0:
        raise UsageError("--fail-on-stall needs a --stall-limit above 0 (0 turns stalls off).")
    if not embedded and any(v is not None for v in (drop_after, rate, symbol_limit)):
        raise UsageError(
            "--drop-after, --rate and --symbol-limit apply to the embedded Alpaca server: "
            "add --embedded."
        )
    knobs: dict[str, float | int | str | bool | None] = {
        "--connection-record-ttl": connection_record_ttl,
        "--drop-commands": drop_commands,
        "--reconnect-attempts": reconnect_attempts,
        "--lifecycle-names": lifecycle_names,
        "--owned-elsewhere": owned_elsewhere,
        "--duplicate-create": duplicate_create or None,
    }
    given = {flag: value for flag, value in knobs.items() if value is not None}
    if given and not embedded:
        raise UsageError(f"{', '.join(given)} configure the embedded platform: add --embedded.")
    if lifecycle_names is not None and lifecycle_names not in ("classic", "spec", "reference"):
        raise UsageError(
            f"--lifecycle-names {lifecycle_names!r}: choose classic, spec or reference."
        )
    opts = RunOptions(
        invocation=invocation,
        symbols=list(symbols or []),
        embedded=embedded,
        alpaca_url=alpaca_url,
        duration=duration,
        min_frames=min_frames,
        report=report,
        stall_limit=stall_limit,
        no_build=no_build,
        package=package,
        url=url,
        replace=replace,
        drop_after=drop_after,
        rate=rate,
        symbol_limit=symbol_limit,
        platform_knobs=given,
        junit=junit,
        fail_on_stall=fail_on_stall,
        connect_retry_for=connect_retry_for,
    )
    outcome = execute(opts)
    sys.stderr.write(
        f"run: {outcome.exit_reason} (exit {outcome.exit_code})\n"
        if outcome.exit_code
        else f"run: {outcome.exit_reason}\n"
    )
    raise typer.Exit(outcome.exit_code)


def _unwritable(path: Path) -> str | None:
    """Why ``path`` cannot be written as a file (``None`` when it can), without creating it."""
    if path.is_dir():
        return "is a directory"
    ancestor = path.parent.absolute()
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        return f"{ancestor} is not a directory"
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return f"cannot write in {ancestor}"
    return None
