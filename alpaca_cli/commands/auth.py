"""``alpaca-md auth``: the Typer wrapper of :func:`alpaca_cli.steps.auth.authenticate`.

What the step does, and why, is in its module's docstring; here only the options are parsed
and the result rendered.
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
