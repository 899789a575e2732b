"""``alpaca-md teardown``: the Typer wrapper of :func:`alpaca_cli.steps.teardown.teardown`;
prints the removed ids (and orphans) on stdout.

What the step does, and why, is in its module's docstring; here only the options are parsed
and the result rendered.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from alpaca_cli.commands._common import CONTROLLER, FILES, fail, render, takes
from alpaca_cli.commands._completion import complete_connection_ids, complete_worker_ids

if TYPE_CHECKING:
    from alpaca_cli.runtime import Invocation


@takes("api_url", *CONTROLLER, *FILES)
def command(
    invocation: Invocation,
    orphans: Annotated[
        bool,
        typer.Option(
            "--orphans",
            help="Also find workers and connections tagged as made by alpaca-md that no state "
            "file names.",
        ),
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="With --orphans: remove them, not just list them.")
    ] = False,
    worker: Annotated[
        str | None,
        typer.Option(
            "--worker",
            metavar="ID",
            autocompletion=complete_worker_ids,
            help="Stop and delete this worker (only it), whether or not a state file names it.",
        ),
    ] = None,
    connection: Annotated[
        str | None,
        typer.Option(
            "--connection",
            metavar="ID",
            autocompletion=complete_connection_ids,
            help="Close this connection (only it), whether or not a state file names it.",
        ),
    ] = None,
    forget: Annotated[
        bool,
        typer.Option(
            "--forget",
            help="When the state file's platform is gone (its gateway refuses connections), "
            "say which ids it names and drop them from the file.",
        ),
    ] = False,
) -> None:
    """Disconnect, stop and delete what the state file names; idempotent.

    Clears the state file only when everything is gone; otherwise keeps it, says what is left
    and exits with the failure's code. --orphans lists workers and connections made by
    alpaca-md that no state file names; --orphans --yes removes them. --worker ID /
    --connection ID remove just those; --forget drops the ids of a platform that is gone.

    Example: alpaca-md teardown --orphans --yes
    """
    from alpaca_cli.errors import UsageError
    from alpaca_cli.steps.teardown import TeardownResult, teardown

    if yes and not orphans:
        raise UsageError("--yes only applies to --orphans; add --orphans.")
    if forget and (worker or connection):
        raise UsageError(
            "--forget drops what the state file names; it does not go with --worker/--connection."
        )
    with invocation.open() as rt:
        result = teardown(
            rt, orphans=orphans, yes=yes, worker=worker, connection=connection, forget=forget
        )

    def show(result: TeardownResult) -> None:
        # What was removed, one id a line: the data of this command (the README's promise).
        for removed_id in (result.disconnected, result.worker_removed):
            if removed_id:
                sys.stdout.write(f"{removed_id}\n")
        for orphan in result.orphans:
            removed = "removed" if orphan.id in result.orphans_removed else "orphan"
            sys.stdout.write(f"{orphan.id}\t{orphan.status}\t{removed}\n")
        for conn in result.orphan_connections:
            removed = "removed" if conn.id in result.orphans_removed else "orphan"
            sys.stdout.write(f"{conn.id}\t{conn.status}\t{removed}\tconnection\n")
        if (result.orphans or result.orphan_connections) and not yes:
            rt.progress(
                f"{len(result.orphans)} orphaned worker(s), "
                f"{len(result.orphan_connections)} orphaned connection(s); "
                "`alpaca-md teardown --orphans --yes` removes them."
            )
        if result.other_hosts:
            rt.progress(
                f"{result.other_hosts} worker(s)/connection(s) made by alpaca-md on other hosts "
                "were left alone."
            )

    render(invocation, result, show, to_json=TeardownResult.to_json)
    if result.failures:
        fail(result.failures[0])
