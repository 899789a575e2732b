"""The application shell: help, version, start-up weight, documented exit codes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alpaca_cli.errors import ExitCode
from alpaca_cli.main import EXIT_CODES_HELP, app

runner = CliRunner()

COMMANDS = [
    "build",
    "deploy",
    "connect",
    "publish",
    "auth",
    "subscribe",
    "tail",
    "list",
    "teardown",
    "run",
]


def _documented_codes(text: str) -> dict[int, str]:
    """``{code: meaning}`` from the help's "Exit codes: 0 ok; 1 ...; 130 interrupted." text."""
    flat = " ".join(text.split())
    found = re.search(r"Exit codes: (.*?)\.(?: |$)", flat)
    assert found is not None, "no exit codes in the help text"
    body = found.group(1)
    pairs = {}
    for part in body.split("; "):
        code, meaning = part.split(" ", 1)
        pairs[int(code)] = meaning
    return pairs


def test_root_help_lists_every_command_and_the_exit_codes() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in [*COMMANDS, "dev"]:
        assert f" {name} " in result.stdout
    codes = _documented_codes(EXIT_CODES_HELP)
    assert sorted(codes) == sorted(int(code) for code in ExitCode)
    # What the user reads is that same text (Click re-wraps it; compare without line breaks).
    assert _documented_codes(result.stdout) == codes


def test_dash_h_is_help() -> None:
    assert runner.invoke(app, ["-h"]).stdout == runner.invoke(app, ["--help"]).stdout


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help_with_the_exit_codes(name: str) -> None:
    result = runner.invoke(app, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Not implemented" not in result.stdout
    assert _documented_codes(result.stdout) == _documented_codes(EXIT_CODES_HELP)


@pytest.mark.parametrize("name", ["feed", "up"])
def test_dev_commands_have_help(name: str) -> None:
    result = runner.invoke(app, ["dev", name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Not implemented" not in result.stdout


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.startswith("alpaca-md ")


def test_help_imports_nothing_heavy() -> None:
    """`alpaca-md --help` must stay close to a bare Typer app: no dapr, grpc, httpx, pydantic."""
    code = (
        "import sys, json\n"
        "from alpaca_cli.main import app\n"
        "try:\n"
        "    app(['--help'], standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('dapr', 'grpc', 'httpx', 'pydantic', 'websockets', 'aiohttp', 'rich.live',\n"
        "         'alpaca_cli.devstack', 'orjson', 'msgpack')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy\n"
        "     or any(m.startswith(h + '.') or m == h for h in heavy))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    loaded = json.loads(out.strip().splitlines()[-1])
    assert loaded == []


@pytest.mark.parametrize("name", [*COMMANDS, "dev"])
def test_the_lazy_command_list_summarises_each_command_as_its_docstring(name: str) -> None:
    """``--help`` lists commands without importing them: its summaries must not drift."""
    from alpaca_cli.main import COMMANDS as TABLE
    from alpaca_cli.main import load_command

    command = load_command(name)
    summary = (command.help or "").strip().split("\n")[0]
    assert TABLE[name][1] == summary


def test_help_imports_no_command_module_and_none_of_the_shared_plumbing() -> None:
    """The root help needs typer and the global options only: not a command module, and not
    ``_common`` (the error handler, the redactor, the configuration table), nor anything else
    of ours (the error tree is imported by ``main()`` only when an error reaches it)."""
    code = (
        "import sys\n"
        "from alpaca_cli.main import main\n"
        "sys.argv = ['alpaca-md', '--help']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('alpaca_cli')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip().splitlines()[-1] == str(
        [
            "alpaca_cli",
            "alpaca_cli.commands",
            "alpaca_cli.commands._options",
            "alpaca_cli.main",
            "alpaca_cli.startup",  # main()'s garbage-collector setting, standard library only
        ]
    )


@pytest.mark.parametrize(
    ("argv", "start", "hint"),
    [
        (["subscribe", "--bogus"], "Error: No such option: --bogus", "alpaca-md subscribe -h"),
        (["nosuch"], "Error: No such command 'nosuch'", "alpaca-md -h"),
        (["run", "--duration", "abc"], "Error: Invalid value for '--duration'", "alpaca-md run -h"),
        (["--bogus"], "Error: No such option: --bogus", "alpaca-md -h"),
        (["dev", "up", "--bogus"], "Error: No such option: --bogus", "alpaca-md dev up -h"),
        (["tail", "--count"], "Error: Option '--count' requires an argument", "alpaca-md tail -h"),
    ],
)
def test_a_usage_error_is_one_line_with_the_way_to_help(
    argv: list[str], start: str, hint: str
) -> None:
    """Click's three-line usage block becomes the tool's one ``Error:`` line, still exit 2."""
    script = Path(sys.executable).with_name("alpaca-md")  # the console script operators run
    done = subprocess.run([script, *argv], capture_output=True, text=True, timeout=60)
    assert done.returncode == ExitCode.USAGE
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(start), lines[0]
    assert lines[0].endswith(f"see '{hint}'."), lines[0]
    # The in-process runner (what most tests use) shows the same line.
    result = runner.invoke(app, argv, prog_name="alpaca-md")
    assert result.exit_code == ExitCode.USAGE
    assert result.stderr.strip() == lines[0]


def test_no_arguments_still_shows_the_help() -> None:
    result = runner.invoke(app, [])
    assert "Commands:" in result.stdout + result.stderr
