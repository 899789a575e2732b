"""Configuration: flag > environment > .env > settings file > default, with sources and errors."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from alpaca_cli.config import (
    DEFAULT_COMMAND_TOPIC,
    ConfigOptions,
    Secret,
    load_config,
    packaged_settings_path,
)
from alpaca_cli.errors import ExitCode, SettingsError


def write_settings(path: Path, **values: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values))
    return path


def test_defaults_come_from_the_packaged_settings_outside_a_checkout(tmp_path: Path) -> None:
    config = load_config(environ={}, cwd=tmp_path)
    assert config.settings_path == packaged_settings_path()
    assert config.channel == "orderbooks"
    assert config.symbols == ("BTC/USD", "ETH/USD", "SOL/USD", "DOGE/USD", "AVAX/USD")
    assert config.api_url == "http://localhost:5001"
    assert config.command_topic == DEFAULT_COMMAND_TOPIC
    assert config.timeout == 15.0
    assert config.state_path == tmp_path / ".alpaca-md" / "state.json"
    assert config.sources["api_url"] == "default"
    assert config.sources["topic"].startswith("settings ")


def test_each_layer_overrides_the_one_below(tmp_path: Path) -> None:
    write_settings(tmp_path / "settings" / "alpaca.json", topic="from-settings", pubsub="s-ps")
    (tmp_path / ".env").write_text("ALPACA_MD_TOPIC=from-dotenv\nALPACA_MD_PUBSUB=d-ps\n")
    config = load_config(environ={}, cwd=tmp_path)
    assert (config.topic, config.pubsub) == ("from-dotenv", "d-ps")
    assert config.sources["topic"] == f".env file {tmp_path / '.env'} (ALPACA_MD_TOPIC)"
    # environment beats .env
    config = load_config(environ={"ALPACA_MD_TOPIC": "from-env"}, cwd=tmp_path)
    assert config.topic == "from-env"
    assert config.sources["topic"] == "env ALPACA_MD_TOPIC"
    assert config.pubsub == "d-ps"
    # option beats environment
    config = load_config(
        ConfigOptions(topic="from-flag"), environ={"ALPACA_MD_TOPIC": "from-env"}, cwd=tmp_path
    )
    assert config.topic == "from-flag"
    assert config.sources["topic"] == "--topic"
    # without .env, the settings file is used
    (tmp_path / ".env").unlink()
    config = load_config(environ={}, cwd=tmp_path)
    assert config.topic == "from-settings"
    assert config.sources["topic"].endswith("alpaca.json (topic)")


def test_dotenv_does_not_touch_os_environ(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("VIRTUFIN_API_URL=http://dotenv:9\n")
    config = load_config(environ=os.environ, cwd=tmp_path)
    assert config.api_url == "http://dotenv:9"
    assert "VIRTUFIN_API_URL" not in os.environ


def test_explicit_env_file_and_missing_one(tmp_path: Path) -> None:
    other = tmp_path / "other.env"
    other.write_text("ALPACA_MD_TIMEOUT=3\n")
    assert load_config(ConfigOptions(env_file=other), environ={}, cwd=tmp_path).timeout == 3.0
    with pytest.raises(SettingsError, match=r"no such \.env file"):
        load_config(ConfigOptions(env_file=tmp_path / "missing.env"), environ={}, cwd=tmp_path)


def test_an_unparsable_env_line_is_an_error_naming_file_and_line_not_its_text(
    tmp_path: Path,
) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text('VIRTUFIN_API_URL=http://h:1\nALPACA_API_SECRET="hunter2\n')
    with pytest.raises(SettingsError) as caught:
        load_config(environ={}, cwd=tmp_path)
    assert f"{env_file}: line 2 is not KEY=value" in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_a_non_utf8_env_file_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"\xff\xfe=1\n")
    with pytest.raises(SettingsError, match="not UTF-8 text"):
        load_config(environ={}, cwd=tmp_path)


def test_a_non_utf8_settings_file_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    settings = tmp_path / "bin.json"
    settings.write_bytes(b"\xff{")
    with pytest.raises(SettingsError, match=f"{settings}: the settings file is not UTF-8"):
        load_config(ConfigOptions(settings=settings), environ={}, cwd=tmp_path)


def test_stream_url_env_overrides_settings_url(tmp_path: Path) -> None:
    config = load_config(environ={"ALPACA_STREAM_URL": "ws://127.0.0.1:9/x"}, cwd=tmp_path)
    assert config.stream_url == "ws://127.0.0.1:9/x"
    assert config.sources["stream_url"] == "env ALPACA_STREAM_URL"


@pytest.mark.parametrize(
    ("values", "field", "fix"),
    [
        pytest.param({"url": "https://x/y"}, "url", "ws:// or wss://", id="http-url"),
        pytest.param({"channel": "book"}, "channel", "one of trades", id="channel"),
        pytest.param({"symbols": ["BTCUSD"]}, "symbols", "BTC/USD", id="symbol-form"),
        pytest.param({"symbols": []}, "symbols", "at least one", id="no-symbols"),
        pytest.param({"topic": "two words"}, "topic", "without spaces", id="topic-space"),
        pytest.param({"topic": ""}, "topic", "without spaces", id="topic-empty"),
        pytest.param({"timeout": -1}, "timeout", "positive", id="timeout"),
        pytest.param({"symbols": "BTC/USD"}, "symbols", "fix", id="symbols-not-a-list"),
    ],
)
def test_invalid_settings_name_file_field_and_fix(
    tmp_path: Path, values: dict[str, object], field: str, fix: str
) -> None:
    path = write_settings(tmp_path / "s.json", **values)
    with pytest.raises(SettingsError) as info:
        load_config(ConfigOptions(settings=path), environ={}, cwd=tmp_path)
    message = str(info.value)
    assert str(path) in message
    assert f"field '{field}'" in message
    assert fix in message
    assert "\n" not in message
    assert info.value.exit_code == ExitCode.USAGE


def test_settings_that_are_not_json(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text("{nope")
    with pytest.raises(SettingsError, match=r"s\.json: not valid JSON \(line 1"):
        load_config(ConfigOptions(settings=path), environ={}, cwd=tmp_path)


def test_missing_settings_file_named_by_option(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="no such settings file"):
        load_config(ConfigOptions(settings=Path("gone.json")), environ={}, cwd=tmp_path)


@pytest.mark.parametrize(
    ("environ", "needle"),
    [
        ({"ALPACA_STREAM_URL": "http://x"}, "env ALPACA_STREAM_URL: field 'stream_url'"),
        ({"ALPACA_MD_CHANNEL": "nope"}, "env ALPACA_MD_CHANNEL: field 'channel'"),
        ({"VIRTUFIN_API_URL": "localhost:5001"}, "env VIRTUFIN_API_URL: field 'api_url'"),
        ({"ALPACA_MD_TIMEOUT": "soon"}, "env ALPACA_MD_TIMEOUT: field 'timeout'"),
        ({"DAPR_GRPC_PORT": "70000"}, "env DAPR_GRPC_PORT"),
    ],
)
def test_invalid_environment_values_name_the_variable(
    tmp_path: Path, environ: dict[str, str], needle: str
) -> None:
    with pytest.raises(SettingsError, match="fix") as info:
        load_config(environ=environ, cwd=tmp_path)
    assert needle in str(info.value)


def test_invalid_symbol_argument_names_the_option(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"SYMBOL\.\.\.: field 'symbols': 'btc-usd'"):
        load_config(ConfigOptions(symbols=["btc-usd"]), environ={}, cwd=tmp_path)


def test_secrets_are_hidden_everywhere_but_get_secret_value(tmp_path: Path) -> None:
    environ = {
        "VIRTUFIN_API_KEY": "vk-123456",
        "ALPACA_API_KEY": "AKTEST",
        "ALPACA_API_SECRET": "shh-very-secret",
        "DAPR_API_TOKEN": "tok-98765",
    }
    config = load_config(environ=environ, cwd=tmp_path)
    assert config.alpaca_secret is not None
    assert config.alpaca_secret.get_secret_value() == "shh-very-secret"
    text = repr(config) + str(config.describe()) + str(config.alpaca_secret)
    for value in environ.values():
        assert value not in text
    assert sorted(config.secret_values()) == sorted(environ.values())
    rows = {name: (shown, source) for name, shown, source in config.describe()}
    assert rows["api_key"] == ("set (hidden)", "env VIRTUFIN_API_KEY")
    assert rows["alpaca_key"][0] == "set (hidden)"
    assert repr(Secret("x")) == "Secret('**********')"


def test_dapr_variables_resolve_through_the_layers(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DAPR_GRPC_PORT=50123\nDAPR_HTTP_PORT=3600\n")
    config = load_config(environ={"DAPR_RUNTIME_HOST": "10.0.0.5"}, cwd=tmp_path)
    assert config.dapr.grpc_address == "10.0.0.5:50123"
    assert config.dapr.http_url == "http://10.0.0.5:3600"
    assert config.dapr.health_timeout == 60.0
    rows = {name: source for name, _, source in config.describe()}
    env_file = f".env file {tmp_path / '.env'}"
    assert rows["dapr.grpc_address"] == f"env DAPR_RUNTIME_HOST, {env_file} (DAPR_GRPC_PORT)"
    assert rows["dapr.http_url"] == f"env DAPR_RUNTIME_HOST, {env_file} (DAPR_HTTP_PORT)"
    endpoint = load_config(environ={"DAPR_HTTP_ENDPOINT": "http://h:1"}, cwd=tmp_path)
    rows = {name: source for name, _, source in endpoint.describe()}
    assert rows["dapr.http_url"] == "env DAPR_HTTP_ENDPOINT"


def test_state_path_from_env_and_option(tmp_path: Path) -> None:
    config = load_config(environ={"ALPACA_MD_STATE": "s/x.json"}, cwd=tmp_path)
    assert config.state_path == tmp_path / "s" / "x.json"
    assert config.sources["state_path"] == "env ALPACA_MD_STATE"
    config = load_config(ConfigOptions(state=tmp_path / "y.json"), environ={}, cwd=tmp_path)
    assert config.state_path == tmp_path / "y.json"


def test_the_repository_settings_file_is_valid() -> None:
    path = Path(__file__).resolve().parents[1] / "settings" / "alpaca.json"
    assert packaged_settings_path() == path
    config = load_config(ConfigOptions(settings=path), environ={}, cwd=path.parent)
    assert config.topic == "alpaca-ticks"


# ---------------------------------------------------------------------------------------------
# The settings file knows its keys.


def test_an_unknown_settings_key_is_one_line_naming_file_key_and_the_likely_one(
    tmp_path: Path,
) -> None:
    path = write_settings(tmp_path / "s.json", chanel="trades")
    with pytest.raises(SettingsError) as info:
        load_config(ConfigOptions(settings=path), environ={}, cwd=tmp_path)
    assert str(info.value) == f"{path}: unknown key 'chanel'; fix: did you mean 'channel'?"
    assert info.value.exit_code == ExitCode.USAGE


def test_an_unknown_settings_key_without_a_close_match_lists_the_known_keys(
    tmp_path: Path,
) -> None:
    path = write_settings(tmp_path / "s.json", zzz=1)
    with pytest.raises(SettingsError, match=r"unknown key 'zzz'; fix: remove it, or use one of "):
        load_config(ConfigOptions(settings=path), environ={}, cwd=tmp_path)


def test_a_secret_put_in_the_settings_file_is_refused_without_echoing_it(tmp_path: Path) -> None:
    path = write_settings(tmp_path / "s.json", api_key="vk-in-the-file")
    with pytest.raises(SettingsError) as info:
        load_config(ConfigOptions(settings=path), environ={}, cwd=tmp_path)
    assert "unknown key 'api_key'" in str(info.value)
    assert "vk-in-the-file" not in str(info.value)


def test_a_wrongly_typed_settings_value_is_named_by_its_type_only(tmp_path: Path) -> None:
    path = write_settings(tmp_path / "s.json", topic=12345)
    with pytest.raises(SettingsError) as info:
        load_config(ConfigOptions(settings=path), environ={}, cwd=tmp_path)
    assert str(info.value) == (
        f"{path}: field 'topic': expected a string, not a JSON number; "
        'fix: write it as a string, e.g. "alpaca-ticks".'
    )


def test_a_null_settings_value_counts_as_not_set(tmp_path: Path) -> None:
    path = write_settings(tmp_path / "s.json", topic=None)
    config = load_config(ConfigOptions(settings=path), environ={}, cwd=tmp_path)
    assert (config.topic, config.sources["topic"]) == ("alpaca-ticks", "default")


def test_an_unknown_settings_key_exits_2_from_the_cli(cli: Any) -> None:
    write_settings(cli.cwd / "settings" / "alpaca.json", chanel="trades")
    result = cli("list")
    assert result.exit_code == 2
    settings = cli.cwd / "settings" / "alpaca.json"
    assert (
        result.stderr == f"Error: {settings}: unknown key 'chanel'; fix: did you mean 'channel'?\n"
    )


# ---------------------------------------------------------------------------------------------
# One loop: every layer is checked by the same parser.


@pytest.mark.parametrize(
    ("name", "option", "variable", "key", "bad", "problem"),
    [
        ("timeout", "timeout", "ALPACA_MD_TIMEOUT", "timeout", "-1", "positive number of seconds"),
        ("topic", "topic", "ALPACA_MD_TOPIC", "topic", "two words", "is not a topic name"),
        ("stream_url", "stream_url", "ALPACA_STREAM_URL", "url", "http://x", "ws:// or wss://"),
        ("api_url", "api_url", "VIRTUFIN_API_URL", "api_url", "gw:1", "is not an http(s) URL"),
        ("channel", "channels", "ALPACA_MD_CHANNEL", "channel", "book", "is not a channel"),
        ("bus", "bus", "ALPACA_MD_BUS", "bus", "grpc", "is not a bus"),
        ("keepalive", "keepalive", "ALPACA_MD_KEEPALIVE", "keepalive", "-5", "0 (off) or a"),
        ("api_grpc", "api_grpc", "VIRTUFIN_API_HOST", "api_grpc", "h:0", "not a port number"),
    ],
)
def test_every_layer_is_checked_the_same_way(
    tmp_path: Path, name: str, option: str, variable: str, key: str, bad: str, problem: str
) -> None:
    """The same bad value fails with the same words from the flag, env, .env and settings."""
    flag_value: object = float(bad) if name in ("timeout", "keepalive") else bad
    if option == "channels":
        flag_value = [bad]
    if variable == "VIRTUFIN_API_HOST":  # the host part of HOST:PORT; the port is its own var
        variable, bad = "VIRTUFIN_API_GRPC_PORT", "0"
    settings_value: object = flag_value if option != "channels" else bad
    env_path = tmp_path / "x.env"
    env_path.write_text(f"{variable}={bad}\n")
    settings = write_settings(tmp_path / "s.json", **{key: settings_value})
    empty = write_settings(tmp_path / "empty.json")
    flag_option: dict[str, Any] = {option: flag_value}
    attempts = [
        (ConfigOptions(settings=empty, **flag_option), {}),
        (ConfigOptions(settings=empty), {variable: bad}),
        (ConfigOptions(settings=empty, env_file=env_path), {}),
        (ConfigOptions(settings=settings), {}),
    ]
    messages = []
    for options, environ in attempts:
        with pytest.raises(SettingsError) as info:
            load_config(options, environ=environ, cwd=tmp_path)
        messages.append(str(info.value))
    assert all(problem in m and "; fix: " in m and "\n" not in m for m in messages), messages
    flag = {"stream_url": "--alpaca-url", "channel": "--channel"}.get(
        name, f"--{name.replace('_', '-')}"
    )
    assert messages[0].startswith(f"{flag}: field '{name}': ")
    assert messages[1].startswith(f"env {variable}: field '{name}': ")
    assert messages[2].startswith(f".env file {env_path} ({variable}): field '{name}': ")
    assert messages[3].startswith(f"{settings}: field '{key}': ")


def test_the_settings_file_named_in_env_is_reported_as_such(tmp_path: Path) -> None:
    write_settings(tmp_path / "mine.json", topic="t")
    config = load_config(environ={"ALPACA_MD_SETTINGS": "mine.json"}, cwd=tmp_path)
    assert config.settings_path == tmp_path / "mine.json"
    assert config.sources["settings_path"] == "env ALPACA_MD_SETTINGS"
    assert config.sources["topic"] == f"settings {tmp_path / 'mine.json'} (topic)"


# ---------------------------------------------------------------------------------------------
# Several channels (issue 13).


def test_channels_repeat_or_comma_separate_and_channel_is_the_first(tmp_path: Path) -> None:
    config = load_config(
        ConfigOptions(channels=["trades,quotes", "orderbooks", "trades"]), environ={}, cwd=tmp_path
    )
    assert config.channels == ("trades", "quotes", "orderbooks")
    assert config.channel == "trades"
    assert config.sources["channels"] == "--channel"
    rows = {name: (shown, source) for name, shown, source in config.describe()}
    assert rows["channels"] == ("trades,quotes,orderbooks", "--channel")


def test_the_old_single_channel_option_still_works(tmp_path: Path) -> None:
    config = load_config(ConfigOptions(channel="quotes"), environ={}, cwd=tmp_path)
    assert (config.channel, config.channels) == ("quotes", ("quotes",))
    with pytest.raises(TypeError, match="channel or channels"):
        ConfigOptions(channel="quotes", channels=["trades"])


def test_channels_from_env_and_from_either_settings_key(tmp_path: Path) -> None:
    env = load_config(environ={"ALPACA_MD_CHANNEL": "trades, quotes"}, cwd=tmp_path)
    assert env.channels == ("trades", "quotes")
    listed = write_settings(tmp_path / "a.json", channels=["quotes", "trades"])
    config = load_config(ConfigOptions(settings=listed), environ={}, cwd=tmp_path)
    assert config.channels == ("quotes", "trades")
    assert config.sources["channels"] == f"settings {listed} (channels)"
    single = write_settings(tmp_path / "b.json", channel="trades")
    config = load_config(ConfigOptions(settings=single), environ={}, cwd=tmp_path)
    assert config.channels == ("trades",)
    assert config.sources["channels"] == f"settings {single} (channel)"


@pytest.mark.parametrize(
    ("values", "needle"),
    [
        pytest.param({"channels": "trades"}, "field 'channels': 'trades' is not a list", id="str"),
        pytest.param({"channels": []}, "field 'channels': no channel", id="empty"),
        pytest.param({"channels": ["trades", "book"]}, "'book' is not a channel", id="one-bad"),
        pytest.param(
            {"channel": "trades", "channels": ["quotes"]},
            "keys 'channel' and 'channels' both set channels; fix: keep only 'channels'.",
            id="both",
        ),
    ],
)
def test_bad_channels_in_the_settings_file(
    tmp_path: Path, values: dict[str, object], needle: str
) -> None:
    path = write_settings(tmp_path / "s.json", **values)
    with pytest.raises(SettingsError, match="fix") as info:
        load_config(ConfigOptions(settings=path), environ={}, cwd=tmp_path)
    assert needle in str(info.value)


# ---------------------------------------------------------------------------------------------
# The bus and the gateway's gRPC address (issue 10).


def test_bus_defaults_to_auto_which_picks_the_gateway_without_a_sidecar(tmp_path: Path) -> None:
    config = load_config(environ={}, cwd=tmp_path)
    assert config.bus == "auto"
    choice = config.chosen_bus()
    assert choice.kind == "gateway"
    assert "DAPR_GRPC_PORT, DAPR_GRPC_ENDPOINT or DAPR_HTTP_PORT" in choice.reason
    rows = {name: (shown, source) for name, shown, source in config.describe()}
    assert rows["bus"] == ("auto", "default")
    assert rows["bus.chosen"] == ("gateway", choice.reason)


@pytest.mark.parametrize("variable", ["DAPR_GRPC_PORT", "DAPR_GRPC_ENDPOINT", "DAPR_HTTP_PORT"])
def test_auto_picks_dapr_when_any_layer_names_a_sidecar(tmp_path: Path, variable: str) -> None:
    value = "localhost:50001" if variable == "DAPR_GRPC_ENDPOINT" else "50001"
    choice = load_config(environ={variable: value}, cwd=tmp_path).chosen_bus()
    assert (choice.kind, choice.reason) == ("dapr", f"auto: env {variable} names a Dapr sidecar")
    (tmp_path / ".env").write_text(f"{variable}={value}\n")
    choice = load_config(environ={}, cwd=tmp_path).chosen_bus()
    assert choice.kind == "dapr"
    assert choice.reason == f"auto: .env file {tmp_path / '.env'} ({variable}) names a Dapr sidecar"


def test_an_explicit_bus_wins_over_the_sidecar_variables(tmp_path: Path) -> None:
    environ = {"ALPACA_MD_BUS": "gateway", "DAPR_GRPC_PORT": "50001"}
    choice = load_config(environ=environ, cwd=tmp_path).chosen_bus()
    assert (choice.kind, choice.reason) == ("gateway", "chosen by env ALPACA_MD_BUS")
    choice = load_config(ConfigOptions(bus="dapr"), environ={}, cwd=tmp_path).chosen_bus()
    assert (choice.kind, choice.reason) == ("dapr", "chosen by --bus")


def test_the_grpc_address_defaults_to_the_api_host_on_5002(tmp_path: Path) -> None:
    config = load_config(environ={"VIRTUFIN_API_URL": "http://gw.test:5001"}, cwd=tmp_path)
    assert config.api_grpc == "gw.test:5002"
    assert config.sources["api_grpc"] == "default (host of api_url)"
    assert config.api_grpc_tls is False
    ipv6 = load_config(ConfigOptions(api_url="http://[::1]:5001"), environ={}, cwd=tmp_path)
    assert ipv6.api_grpc == "[::1]:5002"


def test_the_platform_host_and_port_variables_fill_either_half(tmp_path: Path) -> None:
    base = {"VIRTUFIN_API_URL": "http://gw.test:5001"}
    config = load_config(environ={**base, "VIRTUFIN_API_GRPC_PORT": "6002"}, cwd=tmp_path)
    assert (config.api_grpc, config.sources["api_grpc"]) == (
        "gw.test:6002",
        "env VIRTUFIN_API_GRPC_PORT",
    )
    config = load_config(environ={**base, "VIRTUFIN_API_HOST": "other"}, cwd=tmp_path)
    assert config.api_grpc == "other:5002"
    both = {**base, "VIRTUFIN_API_HOST": "h", "VIRTUFIN_API_GRPC_PORT": "7"}
    config = load_config(environ=both, cwd=tmp_path)
    assert config.api_grpc == "h:7"
    assert config.sources["api_grpc"] == "env VIRTUFIN_API_HOST, env VIRTUFIN_API_GRPC_PORT"
    flag = load_config(ConfigOptions(api_grpc="f:1"), environ=both, cwd=tmp_path)
    assert (flag.api_grpc, flag.sources["api_grpc"]) == ("f:1", "--api-grpc")


@pytest.mark.parametrize("bad", ["nohost", ":5002", "h:", "h:99999", "h:port", "a b:1"])
def test_a_bad_grpc_address_is_named(tmp_path: Path, bad: str) -> None:
    with pytest.raises(SettingsError, match=r"^--api-grpc: field 'api_grpc': .*; fix: use e\.g\."):
        load_config(ConfigOptions(api_grpc=bad), environ={}, cwd=tmp_path)


def test_grpc_tls_follows_an_https_api_url_unless_told_otherwise(tmp_path: Path) -> None:
    https = {"VIRTUFIN_API_URL": "https://gw.example"}
    config = load_config(environ=https, cwd=tmp_path)
    assert config.api_grpc_tls is True
    assert config.sources["api_grpc_tls"] == "default (api_url is https)"
    off = load_config(ConfigOptions(api_grpc_tls=False), environ=https, cwd=tmp_path)
    assert off.api_grpc_tls is False
    on = load_config(environ={"ALPACA_MD_API_GRPC_TLS": "yes"}, cwd=tmp_path)
    assert (on.api_grpc_tls, on.sources["api_grpc_tls"]) == (True, "env ALPACA_MD_API_GRPC_TLS")
    rows = {name: shown for name, shown, _ in on.describe()}
    assert rows["api_grpc_tls"] == "true"
    with pytest.raises(SettingsError, match="'maybe' is not true or false; fix: use true"):
        load_config(environ={"ALPACA_MD_API_GRPC_TLS": "maybe"}, cwd=tmp_path)


# ---------------------------------------------------------------------------------------------
# Keepalive (issue 12).


def test_keepalive_defaults_to_60_and_0_switches_it_off(tmp_path: Path) -> None:
    assert load_config(environ={}, cwd=tmp_path).keepalive == 60.0
    off = load_config(environ={"ALPACA_MD_KEEPALIVE": "0"}, cwd=tmp_path)
    assert (off.keepalive, off.sources["keepalive"]) == (0.0, "env ALPACA_MD_KEEPALIVE")
    path = write_settings(tmp_path / "s.json", keepalive=30)
    assert load_config(ConfigOptions(settings=path), environ={}, cwd=tmp_path).keepalive == 30.0
    for bad in ("nan", "inf", "soon"):
        with pytest.raises(SettingsError, match="field 'keepalive'"):
            load_config(environ={"ALPACA_MD_KEEPALIVE": bad}, cwd=tmp_path)


def test_a_json_boolean_is_not_a_number_of_seconds(tmp_path: Path) -> None:
    path = write_settings(tmp_path / "s.json", timeout=True)
    with pytest.raises(SettingsError, match="field 'timeout': True is not a positive number"):
        load_config(ConfigOptions(settings=path), environ={}, cwd=tmp_path)
