"""``alpaca-md unsubscribe``: remove symbols from the recorded connection's subscription.

The inverse of ``subscribe`` (which is additive): the step sends Alpaca's ``unsubscribe`` and,
when the connection publishes, waits for the confirmed remaining set, records it and prints it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

from alpaca_cli.commands._common import CONTROLLER, FILES, render, takes
from alpaca_cli.commands._completion import symbols_argument

if TYPE_CHECKING:
    from alpaca_cli.runtime import Invocation
    from alpaca_cli.steps.unsubscribe import UnsubscribeResult


@takes("channels", *CONTROLLER, *FILES)
def command(
    invocation: Invocation,
    symbols: Annotated[
        list[str] | None,
        symbols_argument(
            "Symbols to remove (BASE/QUOTE or *) [default: every symbol the state file "
            "records as subscribed]."
        ),
    ] = None,
) -> None:
    """Unsubscribe the recorded connection from symbols; prints the confirmed remaining set.

    Without symbols, removes everything the state file records (on --channel, if given). Prints
    one channel<TAB>symbols line per channel still subscribed; "nothing subscribed" on stderr
    when none is. Alpaca errors exit 5; no confirmation in time exits 6.

    Example: alpaca-md unsubscribe --channel trades ETH/USD
    """
    from alpaca_cli.steps.unsubscribe import unsubscribe_symbols

    channels = invocation.options.channels
    with invocation.open() as rt:
        given = list(rt.config.channels) if channels is not None else None
        result = unsubscribe_symbols(rt, list(symbols or []), channels=given)
    render(invocation, result, show)


def show(result: UnsubscribeResult) -> None:
    """The confirmed remaining set, one ``channel<TAB>symbols`` line per channel."""
    if not result.verified:
        sys.stderr.write("Sent; not verified (the connection does not publish).\n")
        return
    for ch, syms in result.remaining.items():
        sys.stdout.write(f"{ch}\t{','.join(syms)}\n")
    if not result.remaining:
        sys.stderr.write("Nothing subscribed any more.\n")
