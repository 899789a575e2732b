"""The README cannot drift from the CLI: its option tables and exit codes are checked against
the options the commands really have (the Click commands behind ``--help``), as sqlite-utils'
``tests/test_docs.py`` checks its docs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from alpaca_cli.errors import ExitCode
from alpaca_cli.main import COMMANDS, app

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
FLAG = re.compile(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-z])\b")


def _section(title: str) -> str:
    """The README text from the heading ``title`` to the next heading of the same level."""
    start = README.index(f"\n{title}\n")
    level = title.split(" ", 1)[0]
    rest = README[start + len(title) + 2 :]
    end = re.search(rf"\n{level} ", rest)
    return rest[: end.start()] if end else rest


def _table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]


def _option_names(*path: str) -> list[set[str]]:
    """The names (``--x``, ``-x``) of each option of a command, from the Click command itself."""
    command = typer.main.get_command(app)
    for name in path:
        command = command.get_command(None, name)  # type: ignore[attr-defined]
    return [
        set(param.opts) | set(param.secondary_opts)
        for param in command.params
        if param.param_type_name == "option" and "--help" not in param.opts
    ]


def _options(*path: str) -> set[str]:
    return set().union(*_option_names(*path))


def test_every_run_option_is_in_the_readme_table_and_no_other() -> None:
    rows = _table_rows(_section("## `run`"))
    documented = {flag for row in rows for flag in FLAG.findall(row.split("|")[1])}
    assert documented - _options("run") == set(), "README documents options run does not have"
    # An option is documented under any one of its names (``-v`` for ``--verbose``).
    missing = [sorted(names) for names in _option_names("run") if not names & documented]
    assert missing == [], "run has options the README table does not list"


def test_the_readme_exit_code_table_is_the_exit_code_enum() -> None:
    rows = _table_rows(_section("## Exit codes"))
    codes = sorted(int(row.split("|")[1]) for row in rows[1:])
    assert codes == sorted(int(code) for code in ExitCode)


@pytest.mark.parametrize(
    "row", _table_rows(_section("## Configuration"))[1:], ids=lambda row: row.split("|")[1][:40]
)
def test_every_flag_in_the_configuration_table_exists(row: str) -> None:
    every = set().union(*(_options(name) for name in COMMANDS if name != "dev"))
    for flag in FLAG.findall(row.split("|")[1]):
        assert flag in every, f"{flag} is in the README's configuration table but no command has it"
