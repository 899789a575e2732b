"""``alpaca-md teardown``: disconnect, StopWorker, DeleteWorker for what the state file names.

Idempotent: anything already gone (NOT_FOUND, ``Connection not found``) counts as done. The
state file is removed only when everything it named is gone; otherwise it is rewritten to name
only what is left, and the command says what that is and exits with the first failure's code,
so running it again later finishes the job.

The connection is closed through the controller worker's ``disconnect`` while that worker still
runs; when the controller cannot be reached, the gateway's ``websocketmanager.Disconnect`` does the
same without it. ``--orphans`` also looks for workers tagged as made by alpaca-md that no state
file on this host names (a lost or deleted state file), lists them, and removes them with
``--yes``.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from alpaca_cli.commands._common import CONTROLLER, FILES, fail, render, takes

if TYPE_CHECKING:
    from alpaca_cli.runtime import Invocation


@takes("api_url", *CONTROLLER, *FILES)
def command(
    invocation: Invocation,
    orphans: Annotated[
        bool,
        typer.Option(
            "--orphans",
            help="Also find workers tagged as made by alpaca-md that no state file names.",
        ),
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="With --orphans: remove them, not just list them.")
    ] = False,
) -> None:
    """Disconnect, stop and delete what the state file names; idempotent.

    Clears the state file only when everything is gone; otherwise keeps it, says what is left
    and exits with the failure's code. --orphans lists workers made by alpaca-md that no state
    file names; --orphans --yes removes them.

    Example: alpaca-md teardown --orphans --yes
    """
    from alpaca_cli.errors import UsageError
    from alpaca_cli.steps.teardown import TeardownResult, teardown

    if yes and not orphans:
        raise UsageError("--yes only applies to --orphans; add --orphans.")
    with invocation.open() as rt:
        result = teardown(rt, orphans=orphans, yes=yes)

    def show(result: TeardownResult) -> None:
        # What was removed, one id a line: the data of this command (the README's promise).
        for removed_id in (result.disconnected, result.worker_removed):
            if removed_id:
                sys.stdout.write(f"{removed_id}\n")
        for orphan in result.orphans:
            removed = "removed" if orphan.id in result.orphans_removed else "orphan"
            sys.stdout.write(f"{orphan.id}\t{orphan.status}\t{removed}\n")
        if result.orphans and not yes:
            rt.progress(
                f"{len(result.orphans)} orphaned worker(s); "
                "`alpaca-md teardown --orphans --yes` removes them."
            )
        if result.other_hosts:
            rt.progress(
                f"{result.other_hosts} worker(s) made by alpaca-md on other hosts were left alone."
            )

    render(invocation, result, show, to_json=TeardownResult.to_json)
    if result.failures:
        fail(result.failures[0])
