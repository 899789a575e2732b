"""``alpaca-md publish``: the Typer wrapper of
:func:`alpaca_cli.steps.publish.start_publishing`.

What the step does, and why, is in its module's docstring; here only the options are parsed
and the result rendered.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from alpaca_cli.commands._common import CONTROLLER, FILES, render, takes

if TYPE_CHECKING:
    from alpaca_cli.runtime import Invocation


@takes("topic", *CONTROLLER, *FILES)
def command(invocation: Invocation) -> None:
    """Publish every frame of the recorded connection to a topic (the controller's `publish`).

    Prints the topic and records it in the state file; `alpaca-md tail` reads it.

    Example: alpaca-md publish --topic alpaca-ticks
    """
    from alpaca_cli.steps.publish import start_publishing

    with invocation.open() as rt:
        result = start_publishing(rt)
    render(invocation, result, lambda r: sys.stdout.write(f"{r.topic}\n"))
