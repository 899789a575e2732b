"""``alpaca-md list``: the Typer wrapper of :func:`alpaca_cli.steps.listing.list_platform`;
renders tables on a terminal and tab-separated lines otherwise.

What the step does, and why, is in its module's docstring; here only the options are parsed
and the result rendered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from alpaca_cli.commands._common import CONTROLLER, FILES, render, takes

if TYPE_CHECKING:
    from alpaca_cli.runtime import Invocation
    from alpaca_cli.steps.listing import ListResult


@takes("api_url", *CONTROLLER, *FILES)
def command(
    invocation: Invocation,
    via: Annotated[
        str,
        typer.Option(
            "--via",
            help="Where to list connections from: auto (the controller when the state names "
            "one, else the gateway), controller, gateway.",
        ),
    ] = "auto",
    workers_only: Annotated[bool, typer.Option("--workers", help="Only workers.")] = False,
    connections_only: Annotated[
        bool, typer.Option("--connections", help="Only connections.")
    ] = False,
) -> None:
    """List the platform's WebSocket connections and workers.

    On a terminal: tables; piped: tab-separated lines, each starting with `connections` or
    `workers`; with --json: one JSON document. Rows the state file names are marked `state`.

    Example: alpaca-md list --json
    """
    from alpaca_cli.errors import UsageError
    from alpaca_cli.steps.listing import ListResult, list_platform

    if via not in ("auto", "controller", "gateway"):
        raise UsageError(f"--via {via!r}: use auto, controller or gateway.")
    with invocation.open() as rt:
        result = list_platform(
            rt,
            workers=not connections_only,
            connections=not workers_only,
            via=via,  # type: ignore[arg-type]  # checked above
        )
    render(invocation, result, show, to_json=ListResult.to_json)


def show(result: ListResult) -> None:
    """Tables on a terminal, tab-separated lines otherwise."""
    from alpaca_cli.output import Table, write_tables
    from alpaca_cli.steps.deploy import is_ours

    def mark(in_state: bool, ours: bool = False) -> str:
        return "state" if in_state else ("alpaca-md" if ours else "")

    tables = [
        Table(
            "connections",
            ["id", "status", "url", "topic", "created", "mark"],
            [
                [
                    c.id,
                    c.status,
                    c.url,
                    c.topic,
                    c.created_at,
                    mark(c.id == result.state_connection_id),
                ]
                for c in result.connections
            ],
        ),
        Table(
            "workers",
            ["id", "status", "topics", "mime type", "created", "mark"],
            [
                [
                    w.id,
                    w.status,
                    list(w.topics),
                    w.mime_type,
                    w.created_at,
                    mark(w.id == result.state_worker_id, is_ours(dict(w.tags))),
                ]
                for w in result.workers
            ],
        ),
    ]
    write_tables(tables)
