"""``alpaca-md tail``: the Typer wrapper of :func:`alpaca_cli.steps.tail.tail_topic`, under the
one signal strategy (:class:`alpaca_cli.signals.SignalGuard`) of the long-running commands.

What the step does, and why, is in its module's docstring; here only the options are parsed
and the result rendered.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from alpaca_cli.commands._common import BUS, FILES, takes
from alpaca_cli.commands._completion import choices, complete_symbols, complete_types

if TYPE_CHECKING:
    from alpaca_cli.runtime import Invocation


@takes("topic", *BUS, *FILES)
def command(
    invocation: Invocation,
    count: Annotated[
        int | None,
        typer.Option(
            "--count",
            "-n",
            metavar="N",
            help="Stop after N messages (exit 0).",
            show_default=False,
        ),
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option(
            "--duration",
            metavar="SECONDS",
            help="Stop after S seconds (exit 0).",
            show_default=False,
        ),
    ] = None,
    symbol: Annotated[
        list[str] | None,
        typer.Option(
            "--symbol",
            "-s",
            metavar="SYMBOL",
            help="Only this symbol (repeatable).",
            show_default=False,
            autocompletion=complete_symbols,
        ),
    ] = None,
    type_: Annotated[
        list[str] | None,
        typer.Option(
            "--type",
            "-t",
            metavar="TYPE",
            autocompletion=complete_types,
            help="Only these kinds (repeatable or comma-separated): trade, quote, book, bar, "
            "dailybar, updatedbar, bars, success, subscription, error, control.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            metavar="[text|json]",
            help="text (tab-separated lines) or json (NDJSON).",
            autocompletion=choices(("text", "json")),
        ),
    ] = "text",
    stall_limit: Annotated[
        float,
        typer.Option(
            "--stall-limit",
            min=0,
            metavar="SECONDS",
            help="Say so on stderr when no message was printed for this long; 0 = never.",
        ),
    ] = 30.0,
    max_buffer: Annotated[
        int,
        typer.Option(
            "--max-buffer",
            metavar="BYTES",
            help="Output held for a slow stdout reader; when full, new messages are dropped "
            "and counted (a warning shows the lag) until it catches up.",
        ),
    ] = 16 * 1024 * 1024,
) -> None:
    """Print the messages published to a topic, one line each, until Ctrl+C or a limit.

    Order-book lines show the best bid/ask of an L2 book kept per symbol. --output json
    (or --json) writes NDJSON: one raw Alpaca message per line with the frame's metadata.
    Ctrl+C and SIGTERM exit 130 after flushing; --count/--duration exit 0 (give both to bound
    a --count by time). After --stall-limit seconds without a message a warning goes to stderr.
    A reader that does not keep up never makes tail grow past --max-buffer: the messages
    beyond it are dropped, counted and warned about on stderr.

    Beside a real Dapr sidecar give tail an app id of its own:
    dapr run --app-id alpaca-md-tail -- alpaca-md tail

    Example: alpaca-md tail --symbol BTC/USD --type trade --count 10
    """
    from alpaca_cli.errors import ExitCode, UsageError
    from alpaca_cli.signals import SignalGuard
    from alpaca_cli.steps.tail import tail_topic

    if output not in ("text", "json"):
        raise UsageError(f"--output {output!r}: use text or json.")
    # One signal strategy for every long-running command: the first Ctrl+C/SIGTERM only sets
    # the stop event (the tail loop sees it within 100 ms and flushes); nothing is raised into
    # gRPC code. A second one gives up at once.
    with SignalGuard(quiet=True) as guard, invocation.open(stop=guard.stop) as rt:
        sink: Any = sys.stdout
        on_idle = None
        if stall_limit > 0:
            from alpaca_cli.live.stallwatch import StallWatch

            sink = StallWatch(sys.stdout, stall_limit, rt.warn)
            on_idle = sink.check
        result = tail_topic(
            rt,
            topic=invocation.options.topic,
            count=count,
            duration=duration,
            symbols=symbol or (),
            types=type_ or (),
            json_lines=output == "json" or invocation.json,
            out=sink,
            stop=guard.stop,
            max_buffer=max_buffer,
            on_idle=on_idle,
        )
    if result.reason == "pipe-closed" and sink is not sys.stdout:
        # The step silences stdout only when it wrote to it directly; the watch wrapped it.
        from alpaca_cli.output import silence_stdout

        silence_stdout(sys.stdout)
    rt.log(
        f"tail: {result.lines} lines from {result.frames} frames "
        f"({result.messages} messages, {result.decode_errors} decode errors, "
        f"{result.dropped} dropped, peak buffer {result.peak_buffer} bytes); "
        f"ended: {result.reason}"
    )
    if result.dropped:
        rt.warn(
            f"{result.dropped} messages were dropped because stdout did not keep up "
            f"(peak buffer {result.peak_buffer} of {max_buffer} bytes)"
        )
    if result.unwritten:
        rt.warn(f"{result.unwritten} bytes of output were never written: stdout stopped reading")
    if result.reason == "interrupted":
        rt.progress(f"Interrupted after {result.lines} messages.")
        raise typer.Exit(int(ExitCode.INTERRUPTED))
