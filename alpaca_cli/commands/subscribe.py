"""``alpaca-md subscribe``: ask Alpaca for a channel's symbols through the controller.

The step (:func:`subscribe_symbols`) validates the channel and the symbols before anything is
sent (exit 2), builds the additive subscribe message(s) with the Alpaca codec (at most 100
symbols each) and sends them with the controller's ``send_raw``. When the connection publishes,
it listens on the topic first and waits for Alpaca's ``subscription`` confirmation, records the
confirmed set in the state file, and reports 405 (symbol limit) and 410 (channel not available)
as refusals (exit 5).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from alpaca_cli.commands._common import CONTROLLER, FILES, render, takes
from alpaca_cli.completion import complete_symbols

if TYPE_CHECKING:
    from alpaca_cli.runtime import Invocation
    from alpaca_cli.steps.subscribe import SubscribeResult


@takes("channels", *CONTROLLER, *FILES)
def command(
    invocation: Invocation,
    symbols: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="[SYMBOL]...",
            help="Symbols to subscribe to (BASE/QUOTE or *) [default: the settings' symbols].",
            show_default=False,
            autocompletion=complete_symbols,
        ),
    ] = None,
) -> None:
    """Subscribe the recorded connection to a channel's symbols (additive).

    Validates channel and symbols first (exit 2). When the connection publishes, waits for
    Alpaca's confirmation and records it; 405 (symbol limit) and 410 exit 5.

    Example: alpaca-md subscribe --channel trades BTC/USD ETH/USD
    """
    from alpaca_cli.steps.subscribe import subscribe_symbols

    with invocation.open(symbols=symbols or None) as rt:
        result = subscribe_symbols(rt)
    render(invocation, result, show)


def show(result: SubscribeResult) -> None:
    """What Alpaca confirmed, one ``channel<TAB>symbols`` line per channel."""
    if result.confirmed:
        for ch, syms in result.confirmed.items():
            sys.stdout.write(f"{ch}\t{','.join(syms)}\n")
    else:
        for ch in result.channels:
            sys.stdout.write(f"{ch}\t{','.join(result.symbols)}\n")
