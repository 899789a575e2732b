"""The one place results are rendered to stdout: JSON, a Rich table, or plain lines.

Why one renderer: scripts parse our stdout, so the non-TTY form is a contract (gh does the same):
no colour, no header, no truncation, tab-separated columns, RFC 3339 UTC times. On a terminal
(and without ``NO_COLOR`` / ``TERM=dumb``) a Rich table is friendlier. ``--json`` always wins.

Data is written with ``sys.stdout.write``; Rich renders into a string first so that it never
wraps piped output at 80 columns.
When the reader of a pipe leaves, :func:`silence_stdout` points the descriptor at /dev/null so
the interpreter's last flush cannot fail again.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO


@dataclass(frozen=True, slots=True)
class Table:
    """A titled table: ``columns`` names and ``rows`` of cell values (any type, shown as text)."""

    title: str
    columns: Sequence[str]
    rows: Sequence[Sequence[Any]]


def _stdout() -> TextIO:
    return sys.stdout


def force_color() -> bool:
    """``FORCE_COLOR`` asks for styled output even without a terminal (force-color.org: any
    non-empty value but ``0``); ``NO_COLOR`` still wins, being the user's standing refusal."""
    value = os.environ.get("FORCE_COLOR", "")
    return bool(value) and value != "0" and not os.environ.get("NO_COLOR")


def use_rich(stream: TextIO | None = None) -> bool:
    """A Rich table on an interactive terminal that accepts styling, or when ``FORCE_COLOR``
    asks for it (a CI log viewer that renders ANSI colour)."""
    stream = stream or _stdout()
    if force_color():
        return True
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def cell(value: Any) -> str:
    """A cell as plain text: datetimes in RFC 3339 UTC, sequences comma-joined, None empty."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return str(value.isoformat()).replace("+00:00", "Z")
    if isinstance(value, (list, tuple)):
        return ",".join(cell(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}={cell(v)}" for k, v in value.items())
    return str(value).replace("\t", " ").replace("\n", " ")


def write_json(data: Any, stream: TextIO | None = None) -> None:
    """The ``--json`` result: one JSON document on stdout."""
    stream = stream or _stdout()
    stream.write(json.dumps(data, indent=2, default=_json_default, ensure_ascii=False) + "\n")
    stream.flush()


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return cell(value)
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def write_tables(tables: Sequence[Table], stream: TextIO | None = None) -> None:
    """Tables as Rich tables on a TTY, else tab-separated lines (one per row, no header).

    In plain mode each line starts with the table's title (lower-case, ``-`` for spaces) when
    there is more than one table, so a script can ``grep ^workers``.
    """
    stream = stream or _stdout()
    if use_rich(stream):
        _write_rich(tables, stream)
        return
    prefix = len(tables) > 1
    for table in tables:
        kind = table.title.lower().replace(" ", "-")
        if not table.rows:
            # Said on stderr: an empty stdout stays the contract for "no rows".
            sys.stderr.write(f"No {table.title}.\n")
        for row in table.rows:
            cells = [cell(v) for v in row]
            stream.write("\t".join([kind, *cells] if prefix else cells) + "\n")
    stream.flush()


def _write_rich(tables: Sequence[Table], stream: TextIO) -> None:
    from rich.console import Console
    from rich.table import Table as RichTable

    console = Console(file=stream, soft_wrap=False, force_terminal=force_color() or None)
    for table in tables:
        rich_table = RichTable(title=table.title, title_justify="left")
        for column in table.columns:
            rich_table.add_column(column, overflow="fold")
        for row in table.rows:
            rich_table.add_row(*(cell(v) for v in row))
        if not table.rows:
            console.print(f"{table.title}: none")
        else:
            console.print(rich_table)


def silence_stdout(sink: TextIO) -> None:
    """After the reader closed the pipe, point stdout at /dev/null so the interpreter's final
    flush cannot raise BrokenPipeError again."""
    if sink is sys.stdout:
        to_devnull(sys.stdout)


def to_devnull(stream: TextIO) -> None:
    """Point ``stream``'s file descriptor at /dev/null (nothing when it has none)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # pragma: no cover - no file descriptor
        pass


__all__ = [
    "Table",
    "cell",
    "force_color",
    "silence_stdout",
    "to_devnull",
    "use_rich",
    "write_json",
    "write_tables",
]
