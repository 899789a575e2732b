"""The renderer: Rich tables on a terminal, tab-separated lines otherwise, JSON on request."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from alpaca_cli.output import Table, cell, use_rich, write_json, write_tables


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


TABLES = [
    Table("workers", ["id", "status", "topics"], [["w1", "RUNNING", ["a", "b"]]]),
    Table("connections", ["id", "url"], []),
]


def test_plain_lines_are_tab_separated_prefixed_and_headerless() -> None:
    out = io.StringIO()
    write_tables(TABLES, out)
    assert out.getvalue() == "workers\tw1\tRUNNING\ta,b\n"


def test_a_single_table_has_no_prefix() -> None:
    out = io.StringIO()
    write_tables(TABLES[:1], out)
    assert out.getvalue() == "w1\tRUNNING\ta,b\n"


def test_a_terminal_gets_a_rich_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    out = FakeTty()
    assert use_rich(out)
    write_tables(TABLES, out)
    text = out.getvalue()
    assert "RUNNING" in text and "status" in text  # header row present
    assert "connections: none" in text


@pytest.mark.parametrize(("name", "value"), [("NO_COLOR", "1"), ("TERM", "dumb")])
def test_no_color_or_dumb_terminal_gets_plain_lines(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    out = FakeTty()
    write_tables(TABLES[:1], out)
    assert out.getvalue() == "w1\tRUNNING\ta,b\n"


def test_cells_are_stable_text() -> None:
    moment = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    assert cell(moment) == "2026-01-02T01:04:05Z"
    assert cell(datetime(2026, 1, 2, tzinfo=UTC)) == "2026-01-02T00:00:00Z"
    assert cell(None) == ""
    assert cell("a\tb\nc") == "a b c"
    assert cell({"k": "v"}) == "k=v"


def test_json_handles_datetimes_and_tuples() -> None:
    out = io.StringIO()
    write_json({"at": datetime(2026, 1, 1, tzinfo=UTC), "t": (1, 2)}, out)
    assert json.loads(out.getvalue()) == {"at": "2026-01-01T00:00:00Z", "t": [1, 2]}


def test_force_color_gets_a_styled_table_even_when_piped(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    monkeypatch.setenv("FORCE_COLOR", "1")
    out = io.StringIO()
    assert use_rich(out)
    write_tables(TABLES[:1], out)
    assert "\x1b[" in out.getvalue() and "RUNNING" in out.getvalue()
    monkeypatch.setenv("NO_COLOR", "1")  # the user's standing refusal wins
    assert not use_rich(out)
    monkeypatch.setenv("FORCE_COLOR", "0")
    monkeypatch.delenv("NO_COLOR")
    assert not use_rich(out)


def test_an_empty_table_says_so_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    import io

    from alpaca_cli.output import Table

    out = io.StringIO()
    write_tables([Table("connections", ["id"], []), Table("workers", ["id"], [["w1"]])], out)
    assert out.getvalue() == "workers\tw1\n"
    assert capsys.readouterr().err == "No connections.\n"
