"""``alpaca-md publish``: have the WebSocketManager publish the connection's frames to a topic.

The step (:func:`start_publishing`) sends the controller's ``publish`` for the connection the
state names, with the settings' topic (``--topic``), and records the topic: ``auth`` and
``subscribe`` then listen there for Alpaca's answers, and ``tail`` reads it by default.
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
