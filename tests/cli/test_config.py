"""Configuration: flag > environment > .env > settings file > default, with sources and errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

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
    path = Path(__file__).resolve().parents[2] / "settings" / "alpaca.json"
    assert packaged_settings_path() == path
    config = load_config(ConfigOptions(settings=path), environ={}, cwd=path.parent)
    assert config.topic == "alpaca-ticks"
