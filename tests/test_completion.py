"""Shell completion: symbols from settings and state, types and choices; one symbol metavar."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alpaca_cli.commands._completion import choices, complete_symbols, complete_types
from alpaca_cli.main import app
from alpaca_cli.state import StateStore


def test_symbols_come_from_the_state_and_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "settings").mkdir()
    (tmp_path / "settings" / "alpaca.json").write_text(json.dumps({"symbols": ["XRP/USD"]}))
    with StateStore(tmp_path / ".alpaca-md" / "state.json").transaction() as state:
        state.subscriptions = {"trades": ["UNI/USD"]}
    assert complete_symbols("")[:2] == ["XRP/USD", "UNI/USD"]
    assert complete_symbols("u") == ["UNI/USD"]
    assert "BTC/USD" in complete_symbols("b")


def test_a_broken_settings_file_does_not_break_completion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "settings").mkdir()
    (tmp_path / "settings" / "alpaca.json").write_text("{broken")
    assert "BTC/USD" in complete_symbols("BTC")


def test_types_and_choices_complete() -> None:
    assert complete_types("bo") == ["book"]
    assert choices(("text", "json"))("j") == ["json"]


@pytest.mark.parametrize("command", ["run", "subscribe", "unsubscribe"])
def test_every_symbol_argument_has_the_same_metavar(command: str) -> None:
    usage = CliRunner().invoke(app, [command, "--help"]).stdout.splitlines()[0]
    assert usage.endswith("[OPTIONS] [SYMBOL]...")


def test_book_names_its_one_symbol_the_same_way() -> None:
    usage = CliRunner().invoke(app, ["book", "--help"]).stdout.splitlines()[0]
    # Click braces a required argument's custom metavar; the name is the same SYMBOL.
    assert usage.endswith("[OPTIONS] {SYMBOL}")
