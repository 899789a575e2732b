"""The field table and the validators behind it: one row per setting, one rule per kind."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alpaca_cli.config import (
    CHANNELS,
    DAPR_FIELDS,
    FIELDS,
    Config,
    ConfigOptions,
    field,
    is_valid_symbol,
    load_config,
    validate_channels,
    validate_symbols,
)
from alpaca_cli.errors import SettingsError


def test_every_row_names_a_config_attribute_and_an_option_for_its_flag() -> None:
    config_fields = {f.name for f in dataclasses.fields(Config)}
    option_fields = {f.name for f in dataclasses.fields(ConfigOptions)}
    for row in FIELDS:
        assert row.name in config_fields
        if row.flag is not None or row.argument is not None:
            assert row.options_name in option_fields, row.name
    assert {f.name for f in FIELDS} | {"dapr", "sources"} == config_fields
    assert option_fields - {f.options_name for f in FIELDS} == {"channel"}  # the old spelling


def test_flags_variables_and_settings_keys_are_each_used_once() -> None:
    rows = FIELDS + DAPR_FIELDS
    flags = [f.flag for f in rows if f.flag]
    variables = [name for f in rows for name in f.envs]
    keys = [key for f in rows for key in f.keys]
    for names in (flags, variables, keys):
        assert len(names) == len(set(names)), names


def test_secrets_come_only_from_the_environment() -> None:
    for row in FIELDS + DAPR_FIELDS:
        if row.secret:
            assert (row.flag, row.key, row.argument) == (None, None, None), row.name
            assert row.envs


def test_help_texts_end_with_where_the_value_comes_from() -> None:
    """``--help`` names every variable of an option, as the shared options always have."""
    for row in FIELDS:
        assert row.help.endswith("].") and "[" in row.help, row.name
        bracket = row.help[row.help.rindex("[") :]
        assert bracket.startswith(f"[env {', '.join(row.envs)}") if row.envs else True, row.name
        assert "\n" not in row.help


def test_a_bool_flag_gets_its_negative_form_and_a_list_flag_a_list_type() -> None:
    assert field("api_grpc_tls").param_decls == ("--api-grpc-tls/--no-api-grpc-tls",)
    assert field("channels").param_decls == ("--channel",)
    assert field("channels").annotation == list[str] | None
    assert field("timeout").annotation == float | None
    assert field("symbols").param_decls == ()  # positional SYMBOL... arguments
    assert field("bus").choices == ("auto", "gateway", "dapr")
    with pytest.raises(KeyError):
        field("nope")


def test_every_default_passes_its_own_parser(tmp_path: Path) -> None:
    """Defaults go through the loop too: a bad default in the table fails here, not in use."""
    config = load_config(ConfigOptions(settings=_empty(tmp_path)), environ={}, cwd=tmp_path)
    for row in FIELDS:
        if row.name not in ("env_file", "settings_path"):
            assert config.sources[row.name].startswith("default"), row.name


def _empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty.json"
    path.write_text("{}")
    return path


def test_channels_are_the_protocol_cores_one_tuple() -> None:
    from alpaca_cli.alpaca import names
    from alpaca_cli.alpaca.messages import CHANNELS as CORE_CHANNELS

    assert CHANNELS is CORE_CHANNELS is names.CHANNELS
    assert CHANNELS == ("trades", "quotes", "orderbooks", "bars", "updatedBars", "dailyBars")


_SYMBOLISH = st.text(alphabet="ABCXYZabc019/*.- ", max_size=40)


@given(_SYMBOLISH)
def test_the_symbol_rule_is_the_protocol_cores(symbol: str) -> None:
    from alpaca_cli.alpaca.codec import is_valid_symbol as core_rule

    assert is_valid_symbol is core_rule  # one definition (alpaca.names), not two kept equal
    assert is_valid_symbol(symbol) == core_rule(symbol)


@given(
    st.from_regex(r"[A-Z0-9]{1,15}/[A-Z0-9]{1,15}", fullmatch=True)
    | st.just("*")
    | _SYMBOLISH.filter(lambda s: not is_valid_symbol(s))
)
def test_validate_symbols_accepts_exactly_what_the_rule_accepts(symbol: str) -> None:
    if is_valid_symbol(symbol):
        assert validate_symbols([symbol], "--symbol", "symbol") == (symbol,)
    else:
        with pytest.raises(SettingsError) as info:
            validate_symbols([symbol], "--symbol", "symbol")
        message = str(info.value)
        assert message.startswith("--symbol: field 'symbol': ") and "\n" not in message


@pytest.mark.parametrize("symbol", ["btc/usd", "Btc/USD", "BTCUSD", "BTC/USD/EUR", "BTC-X/USD", ""])
def test_lower_case_and_malformed_symbols_are_refused(symbol: str) -> None:
    """``tail --symbol btc/usd`` used to pass here and then filter out every message."""
    with pytest.raises(SettingsError, match="upper case like BTC/USD"):
        validate_symbols([symbol], "--symbol", "symbol")


@given(st.lists(st.sampled_from(CHANNELS), min_size=1), st.sampled_from([",", ", ", " ,"]))
def test_channels_read_the_same_repeated_or_comma_separated(
    names: list[str], separator: str
) -> None:
    expected = tuple(dict.fromkeys(names))
    assert validate_channels(names, "--channel") == expected
    assert validate_channels(separator.join(names), "env ALPACA_MD_CHANNEL") == expected
    assert validate_channels([separator.join(names)], "--channel") == expected


@given(st.text(max_size=20).filter(lambda s: all(n.strip() not in CHANNELS for n in s.split(","))))
def test_anything_else_is_not_a_channel(text: str) -> None:
    with pytest.raises(SettingsError, match="fix: "):
        validate_channels(text, "env ALPACA_MD_CHANNEL")


def test_loading_the_config_imports_neither_pydantic_nor_the_protocol_core(tmp_path: Path) -> None:
    """Module level is stdlib-only (``--help`` imports it); dotenv only when a .env exists.

    Of the protocol core it loads only :mod:`alpaca_cli.alpaca.names` and the package's lazy
    export loader (both stdlib only)."""
    code = (
        "import sys, pathlib\n"
        "import alpaca_cli.config as c\n"
        "assert 'dotenv' not in sys.modules\n"
        "c.load_config(environ={}, cwd=pathlib.Path(sys.argv[1]))\n"
        "core = [m for m in sys.modules if m.startswith('alpaca_cli.alpaca.')]\n"
        "assert core == ['alpaca_cli.alpaca.lazy', 'alpaca_cli.alpaca.names'], core\n"
        "bad = [m for m in ('pydantic', 'dotenv', 'msgspec', 'msgpack') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)
