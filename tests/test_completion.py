"""Shell completion: symbols from settings and state, types and choices; one symbol metavar."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from alpaca_cli.alpaca.messages import CHANNELS
from alpaca_cli.commands._completion import choices, complete_symbols, complete_types
from alpaca_cli.main import app
from alpaca_cli.state import ConnectionRecord, StateStore, WorkerRecord


def test_symbols_come_from_the_state_and_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "settings").mkdir()
    (tmp_path / "settings" / "alpaca.json").write_text(json.dumps({"symbols": ["XRP/USD"]}))
    with StateStore(tmp_path / ".alpaca-md" / "state.json").transaction() as state:
        state.subscriptions = {"trades": ["UNI/USD"]}
    assert complete_symbols(None, "")[:2] == ["XRP/USD", "UNI/USD"]
    assert complete_symbols(None, "u") == ["UNI/USD"]
    assert "BTC/USD" in complete_symbols(None, "b")


def test_a_broken_settings_file_does_not_break_completion(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "settings").mkdir()
    (tmp_path / "settings" / "alpaca.json").write_text("{broken")
    assert "BTC/USD" in complete_symbols(None, "BTC")


def test_types_and_choices_complete() -> None:
    assert complete_types("bo") == ["book"]
    assert choices(("text", "json"))("j") == ["json"]


def test_a_list_option_completes_after_its_last_comma() -> None:
    several = choices(CHANNELS, several=True)
    assert several("tr") == ["trades"]
    assert several("trades,q") == ["trades,quotes"]
    assert "trades,trades" not in several("trades,")
    assert several("trades,quotes,o") == ["trades,quotes,orderbooks"]


def _tab(words: str, cwd: Path) -> list[str]:
    """What bash's <TAB> offers after ``words`` (Click's completion protocol, a real process)."""
    env = {**os.environ, "_ALPACA_MD_COMPLETE": "complete_bash", "COMP_WORDS": words}
    env["COMP_CWORD"] = str(len(words.split(" ")) - 1)
    script = Path(sys.executable).with_name("alpaca-md")
    done = subprocess.run(
        [script], env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=True
    )
    return done.stdout.split()


def test_tab_completes_ids_topics_and_channels_from_the_state_file(tmp_path: Path) -> None:
    state = tmp_path / "elsewhere.json"
    with StateStore(state).transaction() as s:
        s.worker = WorkerRecord(id="w-7f3a", topics=["cmd"])
        s.connection = ConnectionRecord(id="c-91bd", url="wss://example.test/v1beta3/crypto/us")
        s.publish_topic = "alpaca-frames-1"
    assert _tab(f"alpaca-md teardown --state {state} --worker ", tmp_path) == ["w-7f3a"]
    assert _tab(f"alpaca-md teardown --state {state} --connection c", tmp_path) == ["c-91bd"]
    assert _tab(f"alpaca-md teardown --state {state} --connection x", tmp_path) == []
    assert "alpaca-frames-1" in _tab(f"alpaca-md tail --state {state} --topic ", tmp_path)
    assert _tab("alpaca-md run --channel trades,q", tmp_path) == ["trades,quotes"]
    assert _tab("alpaca-md subscribe --bus g", tmp_path) == ["gateway"]


def test_tab_on_a_broken_state_file_offers_nothing_and_says_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    state.write_text("{not json")
    assert _tab(f"alpaca-md teardown --state {state} --worker ", tmp_path) == []


@pytest.mark.parametrize("command", ["run", "subscribe", "unsubscribe"])
def test_every_symbol_argument_has_the_same_metavar(command: str) -> None:
    usage = CliRunner().invoke(app, [command, "--help"]).stdout.splitlines()[0]
    assert usage.endswith("[OPTIONS] [SYMBOL]...")


def test_book_names_its_one_symbol_the_same_way() -> None:
    usage = CliRunner().invoke(app, ["book", "--help"]).stdout.splitlines()[0]
    # Click braces a required argument's custom metavar; the name is the same SYMBOL.
    assert usage.endswith("[OPTIONS] {SYMBOL}")
