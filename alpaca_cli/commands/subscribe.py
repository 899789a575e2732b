"""``alpaca-md subscribe``: the Typer wrapper of
:func:`alpaca_cli.steps.subscribe.subscribe_symbols`; prints one ``channel<TAB>symbols`` line
per confirmed channel.

What the step does, and why, is in its module's docstring; here only the options are parsed
and the result rendered.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from alpaca_cli.commands._common import CONTROLLER, FILES, render, takes
from alpaca_cli.commands._completion import SymbolsToSubscribe

if TYPE_CHECKING:
    from alpaca_cli.runtime import Invocation
    from alpaca_cli.steps.subscribe import SubscribeResult


@takes("channels", *CONTROLLER, *FILES)
def command(
    invocation: Invocation,
    symbols: SymbolsToSubscribe = None,
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
