"""``alpaca-md book SYMBOL``: a live L2 depth ladder of one symbol, from the topic.

On a terminal a Rich ``Live`` ladder redraws every ``--interval``; piped (or with ``--json``)
it writes one NDJSON snapshot per interval, so a script can sample the book. Both show the
book's state: ``partial`` until a snapshot was seen since start, ``stale`` after a reconnect
until the next snapshot. It subscribes nothing: the symbol's order book must already be
published on the topic (``run``, or ``subscribe --channel orderbooks``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Annotated, Any

import typer

from alpaca_cli.commands._common import BUS, FILES, takes
from alpaca_cli.commands._completion import complete_symbols

if TYPE_CHECKING:
    from alpaca_cli.runtime import Invocation


@takes("topic", *BUS, *FILES)
def command(
    invocation: Invocation,
    symbol: Annotated[
        str,
        typer.Argument(
            metavar="SYMBOL",
            help="The symbol whose book to show (BASE/QUOTE, e.g. BTC/USD).",
            autocompletion=complete_symbols,
        ),
    ],
    depth: Annotated[int, typer.Option("--depth", min=1, help="Levels shown a side.")] = 10,
    interval: Annotated[
        float, typer.Option("--interval", min=0.05, help="Seconds between snapshots/redraws.")
    ] = 1.0,
    count: Annotated[
        int | None,
        typer.Option(
            "--count", "-n", min=1, help="Stop after N snapshots (exit 0).", show_default=False
        ),
    ] = None,
    duration: Annotated[
        float | None,
        typer.Option("--duration", help="Stop after S seconds (exit 0).", show_default=False),
    ] = None,
) -> None:
    """Show one symbol's L2 order book live: a ladder on a terminal, NDJSON when piped.

    Top --depth levels a side with size and cumulative size, spread, mid and age. The
    state says how far to trust it: waiting, partial (no snapshot seen since start), live,
    or stale (reconnected, until the next snapshot). Piped or with --json: one JSON object
    per --interval. Ctrl+C and SIGTERM exit 130; --count/--duration exit 0.

    Example: alpaca-md book BTC/USD --depth 5
    """
    from alpaca_cli.errors import ExitCode
    from alpaca_cli.signals import SignalGuard
    from alpaca_cli.steps.book import watch_book

    emitter = _ladder() if not invocation.json and _terminal() else nullcontext(_ndjson)
    with (
        SignalGuard(quiet=True) as guard,
        invocation.open(stop=guard.stop) as rt,
        emitter as emit,
    ):
        result = watch_book(
            rt,
            symbol,
            emit=emit,
            depth=depth,
            interval=interval,
            topic=invocation.options.topic,
            count=count,
            duration=duration,
            stop=guard.stop,
        )
    if result.reason == "interrupted":
        raise typer.Exit(int(ExitCode.INTERRUPTED))


def _terminal() -> bool:
    return sys.stdout.isatty() and os.environ.get("TERM") != "dumb"


def _ndjson(snap: dict[str, Any]) -> None:
    import orjson

    sys.stdout.write(orjson.dumps(snap).decode() + "\n")
    sys.stdout.flush()


@contextmanager
def _ladder() -> Iterator[Callable[[dict[str, Any]], None]]:
    """A Rich ``Live`` ladder on the terminal for as long as the block runs; yields its emit."""
    from rich.console import Console
    from rich.live import Live

    from alpaca_cli.live.ladder import render

    with Live(console=Console(), auto_refresh=False, redirect_stdout=False) as view:
        yield lambda snap: view.update(render(snap), refresh=True)
