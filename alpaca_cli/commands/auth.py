"""``alpaca-md auth``: send Alpaca's auth message upstream through the controller.

The step (:func:`authenticate`) reads ``ALPACA_API_KEY`` / ``ALPACA_API_SECRET`` (environment or
``.env``; never a flag) and refuses before anything is sent when one is missing. It sends the
auth message with the controller's ``send_raw``. When the connection publishes (the state names
a topic) it first subscribes to that topic, so Alpaca's answer cannot be missed, and reports
``authenticated`` or the Alpaca error: 402 (bad keys), 406 (connection limit), 409 (no
subscription for this feed) are credential refusals (exit 4).

The auth message holds the secret: it goes only into ``send_raw`` (base64), which is never
logged; no result or state field carries it.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from alpaca_cli.commands._common import CONTROLLER, FILES, render, takes

if TYPE_CHECKING:
    from alpaca_cli.runtime import Invocation


@takes(*CONTROLLER, *FILES)
def command(invocation: Invocation) -> None:
    """Authenticate the recorded connection with ALPACA_API_KEY / ALPACA_API_SECRET.

    The keys come from the environment or .env, never from flags. When the connection
    publishes, waits for Alpaca's answer: exit 4 on 402/406/409.

    Example: ALPACA_API_KEY=... ALPACA_API_SECRET=... alpaca-md auth
    """
    from alpaca_cli.steps.auth import authenticate

    with invocation.open() as rt:
        result = authenticate(rt)
    render(invocation, result, lambda r: sys.stdout.write(f"{r.message}\n"))
