"""The root's global options (``--json``, ``-v``): what ``alpaca-md --help`` needs, and no more.

They live apart from :mod:`alpaca_cli.commands._common` so that :mod:`alpaca_cli.main` can
declare them without importing the shared command plumbing (the error handler, the redactor,
``dataclasses``, the configuration table): the root help imports typer and this module only
(``tests/test_main.py`` checks it; ``make bench``: ``startup``).
"""

from __future__ import annotations

from typing import Annotated, NamedTuple

import typer

JsonOption = Annotated[bool, typer.Option("--json", help="Write the result to stdout as JSON.")]
VerboseOption = Annotated[
    int,
    typer.Option(
        "--verbose", "-v", count=True, help="Diagnostics on stderr (secrets redacted); repeat."
    ),
]


class GlobalOptions(NamedTuple):
    """Options given before the subcommand name (immutable, like every value passed down).

    A ``NamedTuple`` rather than a dataclass: ``typing`` is loaded by typer already, and
    ``dataclasses`` costs the root help a millisecond it does not otherwise spend.
    """

    json: bool = False
    verbose: int = 0
