"""Resolved configuration: command-line option > environment > ``.env`` > settings file > default.

Every subcommand resolves the same :class:`Config` through :func:`load_config`, so the layering and
the error messages are identical everywhere, and ``-v`` can say where each value came from
(:meth:`Config.describe`).

Stable API (other modules rely on it)::

    ConfigOptions(api_url=None, settings=None, env_file=None, state=None, pubsub=None,
                  command_topic=None, reply_topic=None, timeout=None, stream_url=None,
                  channel=None, symbols=None, topic=None, project=None)
    load_config(options=None, *, environ=None, cwd=None) -> Config
    Config: api_url, api_key, alpaca_key, alpaca_secret, stream_url, channel, symbols, topic,
            project, pubsub, command_topic, reply_topic, timeout, state_path, settings_path,
            env_file, dapr (DaprSettings), sources, secret_values(), describe()
    DaprSettings: runtime_host, http_port, grpc_port, api_token, health_timeout, grpc_endpoint,
                  http_endpoint, grpc_address, http_url
    Secret: a string whose repr/str is redacted; ``.get_secret_value()`` reveals it
    validate_channel(value, source) / validate_symbols(values, source) / validate_topic(...)
    CHANNELS, DEFAULT_* constants

Why not pydantic-settings: it cannot report the source of each value, and it would import
pydantic at start-up. This module imports only the standard library at module level; pydantic
(settings file validation) and python-dotenv load when :func:`load_config` runs, so that
``alpaca-md --help`` stays light.

An option left at ``None`` means "not given": a layer overrides only what it actually set
(httpx's ``UNSET`` idea). The ``.env`` file is read with ``dotenv_values`` and never written into
``os.environ`` (``override=False`` semantics: the real environment wins).
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from alpaca_cli.errors import SettingsError

if TYPE_CHECKING:
    from pydantic import BaseModel

CHANNELS: Final = ("trades", "quotes", "orderbooks", "bars", "updatedBars", "dailyBars")
DEFAULT_API_URL: Final = "http://localhost:5001"
DEFAULT_STREAM_URL: Final = "wss://stream.data.alpaca.markets/v1beta3/crypto/us"
DEFAULT_CHANNEL: Final = "orderbooks"
DEFAULT_SYMBOLS: Final = ("BTC/USD", "ETH/USD", "SOL/USD", "DOGE/USD", "AVAX/USD")
DEFAULT_TOPIC: Final = "alpaca-ticks"
DEFAULT_PUBSUB: Final = "pubsub"
DEFAULT_COMMAND_TOPIC: Final = "command.websocketmanagercontroller"
DEFAULT_REPLY_TOPIC: Final = "response.websocketmanagercontroller"
DEFAULT_TIMEOUT: Final = 15.0
DEFAULT_STATE_PATH: Final = Path(".alpaca-md") / "state.json"
DEFAULT_SETTINGS_PATH: Final = Path("settings") / "alpaca.json"
DEFAULT_ENV_FILE: Final = Path(".env")

_SYMBOL = re.compile(r"^[A-Za-z0-9.\-]+/[A-Za-z0-9.\-]+$")
_TOPIC = re.compile(r"^\S+$")
_MASK = "**********"


class Secret:
    """A string that never shows itself in a repr, a str, a log line or a traceback.

    Example::

        key = Secret("abc")
        repr(key)                # "Secret('**********')"
        key.get_secret_value()   # "abc": only where the value is sent
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        """The real value: call this only where it is sent over the wire."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{_MASK}')"

    def __str__(self) -> str:
        return _MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


@dataclass(frozen=True, slots=True)
class ConfigOptions:
    """What the command line gave; ``None`` everywhere means "not given"."""

    api_url: str | None = None
    settings: Path | None = None
    env_file: Path | None = None
    state: Path | None = None
    pubsub: str | None = None
    command_topic: str | None = None
    reply_topic: str | None = None
    timeout: float | None = None
    stream_url: str | None = None
    channel: str | None = None
    symbols: Sequence[str] | None = None
    topic: str | None = None
    project: str | None = None


@dataclass(frozen=True, slots=True)
class DaprSettings:
    """The Dapr SDK's own variables, resolved through our layers so a ``.env`` file counts too.

    The SDK reads ``os.environ`` once at import; pass these explicitly to ``DaprClient`` instead.
    """

    runtime_host: str = "127.0.0.1"
    http_port: int = 3500
    grpc_port: int = 50001
    api_token: Secret | None = None
    health_timeout: float = 60.0
    grpc_endpoint: str | None = None
    """``DAPR_GRPC_ENDPOINT`` wins over host:port in the SDK; kept for the same precedence."""
    http_endpoint: str | None = None

    @property
    def grpc_address(self) -> str:
        """``host:port`` for ``DaprClient(address=...)``."""
        if self.grpc_endpoint:
            return self.grpc_endpoint
        return f"{self.runtime_host}:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        """Base URL of the sidecar's HTTP API (its ``/v1.0/healthz`` lives there)."""
        if self.http_endpoint:
            return self.http_endpoint.rstrip("/")
        return f"http://{self.runtime_host}:{self.http_port}"


@dataclass(frozen=True, slots=True)
class Config:
    """Every value a command may need, each with the layer it came from in :attr:`sources`."""

    api_url: str
    api_key: Secret | None
    alpaca_key: Secret | None
    alpaca_secret: Secret | None
    stream_url: str
    channel: str
    symbols: tuple[str, ...]
    topic: str
    project: str | None
    pubsub: str
    command_topic: str
    reply_topic: str
    timeout: float
    state_path: Path
    settings_path: Path | None
    env_file: Path | None
    dapr: DaprSettings
    sources: Mapping[str, str] = field(default_factory=dict)
    """Field name -> where it came from: ``--api-url``, ``env VIRTUFIN_API_URL``,
    ``.env file PATH (NAME)``, ``settings PATH (field)`` or ``default``."""

    def secret_values(self) -> list[str]:
        """Every secret this configuration holds, for :mod:`alpaca_cli.redact`."""
        found = [self.api_key, self.alpaca_key, self.alpaca_secret, self.dapr.api_token]
        return [s.get_secret_value() for s in found if s]

    def describe(self) -> list[tuple[str, str, str]]:
        """``(name, shown value, source)`` rows for ``-v``; secrets show as set/not set only."""
        rows: list[tuple[str, str, str]] = []
        for name in _DESCRIBED:
            value: Any = getattr(self, name)
            if isinstance(value, Secret) or name in _SECRET_FIELDS:
                shown = "set (hidden)" if value else "not set"
            elif isinstance(value, tuple):
                shown = ",".join(value)
            else:
                shown = "" if value is None else str(value)
            rows.append((name, shown, self.sources.get(name, "default")))
        dapr = self.dapr
        for name, shown in (("grpc_address", dapr.grpc_address), ("http_url", dapr.http_url)):
            rows.append((f"dapr.{name}", shown, self.sources.get(f"dapr.{name}", "default")))
        rows.append(
            (
                "dapr.api_token",
                "set (hidden)" if dapr.api_token else "not set",
                self.sources.get("dapr.api_token", "default"),
            )
        )
        return rows


_SECRET_FIELDS: Final = frozenset({"api_key", "alpaca_key", "alpaca_secret"})
_DESCRIBED: Final = (
    "api_url",
    "api_key",
    "alpaca_key",
    "alpaca_secret",
    "stream_url",
    "channel",
    "symbols",
    "topic",
    "project",
    "pubsub",
    "command_topic",
    "reply_topic",
    "timeout",
    "state_path",
    "settings_path",
    "env_file",
)

# field -> (command-line flag, environment variable, settings-file key)
_LAYERS: Final[dict[str, tuple[str | None, str | None, str | None]]] = {
    "api_url": ("--api-url", "VIRTUFIN_API_URL", "api_url"),
    "stream_url": ("--url", "ALPACA_STREAM_URL", "url"),
    "channel": ("--channel", "ALPACA_MD_CHANNEL", "channel"),
    "symbols": ("SYMBOL...", None, "symbols"),
    "topic": ("--topic", "ALPACA_MD_TOPIC", "topic"),
    "project": ("--project", "ALPACA_MD_PROJECT", "project"),
    "pubsub": ("--pubsub", "ALPACA_MD_PUBSUB", "pubsub"),
    "command_topic": ("--command-topic", "ALPACA_MD_COMMAND_TOPIC", "command_topic"),
    "reply_topic": ("--reply-topic", "ALPACA_MD_REPLY_TOPIC", "reply_topic"),
    "timeout": ("--timeout", "ALPACA_MD_TIMEOUT", "timeout"),
}
_DEFAULTS: Final[dict[str, Any]] = {
    "api_url": DEFAULT_API_URL,
    "stream_url": DEFAULT_STREAM_URL,
    "channel": DEFAULT_CHANNEL,
    "symbols": DEFAULT_SYMBOLS,
    "topic": DEFAULT_TOPIC,
    "project": None,
    "pubsub": DEFAULT_PUBSUB,
    "command_topic": DEFAULT_COMMAND_TOPIC,
    "reply_topic": DEFAULT_REPLY_TOPIC,
    "timeout": DEFAULT_TIMEOUT,
}


# ---------------------------------------------------------------------------------------------
# Validation: one-line errors naming where the value came from, the field and the fix.


def validate_url(value: str, source: str, field_name: str = "url") -> str:
    """A WebSocket URL (ws/wss) with a host."""
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme not in ("ws", "wss") or not parts.netloc:
        raise SettingsError(
            f"{source}: field '{field_name}': {value!r} is not a ws:// or wss:// URL; "
            "fix: use e.g. wss://stream.data.alpaca.markets/v1beta3/crypto/us."
        )
    return value


def validate_channel(value: str, source: str, field_name: str = "channel") -> str:
    """One of Alpaca's crypto channels (:data:`CHANNELS`)."""
    if value not in CHANNELS:
        raise SettingsError(
            f"{source}: field '{field_name}': {value!r} is not a channel; "
            f"fix: use one of {', '.join(CHANNELS)}."
        )
    return value


def validate_symbols(
    values: Iterable[str], source: str, field_name: str = "symbols"
) -> tuple[str, ...]:
    """Symbols in ``BASE/QUOTE`` form, or ``*``; at least one."""
    result = tuple(values)
    if not result:
        raise SettingsError(
            f"{source}: field '{field_name}': no symbols; fix: give at least one, e.g. BTC/USD."
        )
    for symbol in result:
        if symbol != "*" and not _SYMBOL.match(symbol):
            raise SettingsError(
                f"{source}: field '{field_name}': {symbol!r} is not a BASE/QUOTE symbol; "
                "fix: write it like BTC/USD (or * for all)."
            )
    return result


def validate_topic(value: str, source: str, field_name: str = "topic") -> str:
    """A pub/sub topic: non-empty, no whitespace."""
    if not _TOPIC.match(value):
        raise SettingsError(
            f"{source}: field '{field_name}': {value!r} is not a topic name; "
            "fix: use a non-empty name without spaces, e.g. alpaca-ticks."
        )
    return value


def validate_http_url(value: str, source: str, field_name: str) -> str:
    """The gateway base URL: http or https with a host."""
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(
            f"{source}: field '{field_name}': {value!r} is not an http(s) URL; "
            f"fix: use e.g. {DEFAULT_API_URL}."
        )
    return value.rstrip("/")


def _validate_timeout(value: Any, source: str, field_name: str = "timeout") -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = -1.0
    if not number > 0 or number != number or number == float("inf"):
        raise SettingsError(
            f"{source}: field '{field_name}': {value!r} is not a positive number of seconds; "
            "fix: use e.g. 15."
        )
    return number


def _validate_name(value: str, source: str, field_name: str) -> str:
    return validate_topic(value, source, field_name)


# ---------------------------------------------------------------------------------------------
# The settings file.


@functools.cache
def _settings_model() -> type[BaseModel]:
    """Build the pydantic model on first use, keeping pydantic out of ``--help``."""
    from pydantic import BaseModel, ConfigDict, field_validator

    class SettingsFile(BaseModel):
        """``settings/alpaca.json``: every key optional; unknown keys are ignored."""

        model_config = ConfigDict(extra="ignore", frozen=True)

        url: str | None = None
        channel: str | None = None
        symbols: list[str] | None = None
        topic: str | None = None
        project: str | None = None
        pubsub: str | None = None
        command_topic: str | None = None
        reply_topic: str | None = None
        timeout: float | None = None
        api_url: str | None = None

        @field_validator("url")
        @classmethod
        def _url(cls, v: str | None) -> str | None:
            return None if v is None else _check(validate_url, v)

        @field_validator("channel")
        @classmethod
        def _channel(cls, v: str | None) -> str | None:
            return None if v is None else _check(validate_channel, v)

        @field_validator("symbols")
        @classmethod
        def _symbols(cls, v: list[str] | None) -> list[str] | None:
            if v is None:
                return None
            try:
                validate_symbols(v, "")
            except SettingsError as exc:
                raise ValueError(_fix_of(exc)) from None
            return v

        @field_validator("topic", "pubsub", "command_topic", "reply_topic")
        @classmethod
        def _topic(cls, v: str | None) -> str | None:
            return None if v is None else _check(validate_topic, v)

        @field_validator("api_url")
        @classmethod
        def _api_url(cls, v: str | None) -> str | None:
            if v is None:
                return None
            try:
                return validate_http_url(v, "", "")
            except SettingsError as exc:
                raise ValueError(_fix_of(exc)) from None

        @field_validator("timeout")
        @classmethod
        def _timeout(cls, v: float | None) -> float | None:
            return None if v is None else _check(_validate_timeout, v)

    return SettingsFile


def _fix_of(exc: SettingsError) -> str:
    """The part of a validator's message after ``field 'x': ``."""
    text = exc.message
    marker = "': "
    return text.split(marker, 1)[1] if marker in text else text


def _check(validator: Any, value: Any) -> Any:
    try:
        return validator(value, "")
    except SettingsError as exc:
        raise ValueError(_fix_of(exc)) from None


def packaged_settings_path() -> Path:
    """The settings shipped with the tool: in a wheel ``alpaca_cli/_data/alpaca.json``, in a
    checkout (editable install) the repository's ``settings/alpaca.json``."""
    package_dir = Path(__file__).resolve().parent
    wheel_copy = package_dir / "_data" / "alpaca.json"
    if wheel_copy.is_file():
        return wheel_copy
    return package_dir.parent / "settings" / "alpaca.json"


def _read_utf8(path: Path, what: str, *, encoding_fix: str, missing_fix: str) -> str:
    """A configuration file's text, or a one-line SettingsError naming the file and the fix."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise SettingsError(f"{path}: {what} is not UTF-8 text; fix: {encoding_fix}.") from None
    except OSError as exc:
        raise SettingsError(
            f"{path}: cannot read {what} ({exc.strerror}); fix: {missing_fix}."
        ) from exc


def load_settings_file(path: Path) -> dict[str, Any]:
    """Read and validate one settings file; returns only the keys it sets.

    Raises:
        SettingsError: unreadable file, invalid JSON, or an invalid field (file, field, fix).
    """
    from pydantic import ValidationError

    text = _read_utf8(
        path,
        "the settings file",
        encoding_fix="save it as UTF-8 JSON",
        missing_fix="pass an existing file with --settings",
    )
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SettingsError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
            "fix: correct the JSON syntax."
        ) from exc
    if not isinstance(raw, dict):
        raise SettingsError(f"{path}: expected a JSON object; fix: wrap the settings in {{...}}.")
    try:
        model = _settings_model().model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(root)"
        msg = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] != "value_error":
            msg = f"{msg}; fix: correct the value"
        raise SettingsError(f"{path}: field '{loc}': {msg}".rstrip(".") + ".") from None
    return model.model_dump(exclude_none=True)


# ---------------------------------------------------------------------------------------------
# Resolution.


def _read_env_file(path: Path) -> dict[str, str]:
    """The file's values; a line dotenv cannot parse is an error naming its number.

    dotenv itself only logs an anonymous warning and drops the line, which can silently drop a
    key (then reported as "not set"); a non-UTF-8 file made it raise a traceback. The line's
    text is never shown: it may hold a secret.
    """
    import io

    from dotenv import dotenv_values
    from dotenv.parser import parse_stream

    text = _read_utf8(
        path,
        "the .env file",
        encoding_fix="save it as UTF-8",
        missing_fix="pass a readable --env-file",
    )
    for binding in parse_stream(io.StringIO(text)):
        if binding.error:
            raise SettingsError(
                f"{path}: line {binding.original.line} is not KEY=value; "
                "fix: correct or remove that line."
            )
    values = dotenv_values(stream=io.StringIO(text))
    return {k: v for k, v in values.items() if v is not None}


def load_config(
    options: ConfigOptions | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Config:
    """Resolve every setting through the five layers.

    Args:
        options: what the command line gave (``None`` fields = not given).
        environ: the process environment (default ``os.environ``); never modified.
        cwd: where relative defaults (``./.env``, ``settings/alpaca.json``, the state file) live.

    Raises:
        SettingsError: a file named by an option is missing, or a value is invalid; the message
            names the file or variable, the field and the fix.
    """
    import os

    opts = options or ConfigOptions()
    env: Mapping[str, str] = os.environ if environ is None else environ
    base = Path.cwd() if cwd is None else cwd
    sources: dict[str, str] = {}

    # .env: --env-file, else ALPACA_MD_ENV_FILE, else ./.env when present.
    env_file: Path | None
    if opts.env_file is not None or env.get("ALPACA_MD_ENV_FILE"):
        given = opts.env_file if opts.env_file is not None else Path(env["ALPACA_MD_ENV_FILE"])
        env_file = given if given.is_absolute() else base / given
        if not env_file.is_file():
            raise SettingsError(f"{given}: no such .env file; fix: create it or drop --env-file.")
    else:
        candidate = base / DEFAULT_ENV_FILE
        env_file = candidate if candidate.is_file() else None
    dotenv: dict[str, str] = _read_env_file(env_file) if env_file else {}

    def from_env(name: str) -> tuple[str, str] | None:
        if name in env and env[name] != "":
            return env[name], f"env {name}"
        if name in dotenv and dotenv[name] != "":
            return dotenv[name], f".env file {env_file} ({name})"
        return None

    # Settings: --settings, else ALPACA_MD_SETTINGS, else ./settings/alpaca.json, else packaged.
    settings_path: Path | None
    found = from_env("ALPACA_MD_SETTINGS")
    if opts.settings is not None or found:
        given = opts.settings if opts.settings is not None else Path(found[0] if found else "")
        settings_path = given if given.is_absolute() else base / given
        if not settings_path.is_file():
            raise SettingsError(
                f"{given}: no such settings file; fix: pass an existing file with --settings."
            )
    else:
        local = base / DEFAULT_SETTINGS_PATH
        settings_path = local if local.is_file() else packaged_settings_path()
        if not settings_path.is_file():  # pragma: no cover - broken installation
            settings_path = None
    settings = load_settings_file(settings_path) if settings_path else {}

    values: dict[str, Any] = {}
    for name, (flag, var, key) in _LAYERS.items():
        given_value = getattr(opts, name)
        if given_value is not None:
            values[name], sources[name] = given_value, flag or name
            continue
        hit = from_env(var) if var else None
        if hit is not None:
            values[name], sources[name] = hit
            continue
        if key is not None and key in settings:
            values[name], sources[name] = settings[key], f"settings {settings_path} ({key})"
            continue
        values[name], sources[name] = _DEFAULTS[name], "default"

    # Layers above the settings file are validated here (the file validated itself).
    def checked(name: str, validator: Any) -> Any:
        value = values[name]
        if sources[name].startswith("settings ") or sources[name] == "default":
            return value
        return validator(value, sources[name], name)

    api_url = validate_http_url(values["api_url"], sources["api_url"], "api_url")
    stream_url = checked("stream_url", validate_url)
    channel = checked("channel", validate_channel)
    symbols = tuple(checked("symbols", validate_symbols))
    topic = checked("topic", validate_topic)
    pubsub = checked("pubsub", _validate_name)
    command_topic = checked("command_topic", _validate_name)
    reply_topic = checked("reply_topic", _validate_name)
    timeout = _validate_timeout(values["timeout"], sources["timeout"])

    # State file: --state, else ALPACA_MD_STATE, else ./.alpaca-md/state.json.
    if opts.state is not None:
        state_path, sources["state_path"] = opts.state, "--state"
    elif (hit := from_env("ALPACA_MD_STATE")) is not None:
        state_path, sources["state_path"] = Path(hit[0]), hit[1]
    else:
        state_path, sources["state_path"] = DEFAULT_STATE_PATH, "default"
    if not state_path.is_absolute():
        state_path = base / state_path

    def secret(name: str, field_name: str) -> Secret | None:
        hit = from_env(name)
        if hit is None:
            return None
        sources[field_name] = hit[1]
        return Secret(hit[0])

    api_key = secret("VIRTUFIN_API_KEY", "api_key")
    alpaca_key = secret("ALPACA_API_KEY", "alpaca_key")
    alpaca_secret = secret("ALPACA_API_SECRET", "alpaca_secret")
    dapr = _dapr_settings(from_env, sources)

    sources["settings_path"] = "--settings" if opts.settings is not None else "default"
    sources["env_file"] = "--env-file" if opts.env_file is not None else "default"
    return Config(
        api_url=api_url,
        api_key=api_key,
        alpaca_key=alpaca_key,
        alpaca_secret=alpaca_secret,
        stream_url=stream_url,
        channel=channel,
        symbols=symbols,
        topic=topic,
        project=values["project"],
        pubsub=pubsub,
        command_topic=command_topic,
        reply_topic=reply_topic,
        timeout=timeout,
        state_path=state_path,
        settings_path=settings_path,
        env_file=env_file,
        dapr=dapr,
        sources=sources,
    )


def _dapr_settings(from_env: Any, sources: dict[str, str]) -> DaprSettings:
    # Each address names the variables it was built from: one shared key labelled the HTTP URL
    # with DAPR_GRPC_PORT (whichever variable was read last) under -v.
    def note(key: str, source: str) -> None:
        sources[key] = f"{sources[key]}, {source}" if key in sources else source

    def port(name: str, default: int, key: str) -> int:
        hit = from_env(name)
        if hit is None:
            return default
        note(key, hit[1])
        try:
            number = int(hit[0])
        except ValueError:
            number = -1
        if not 0 < number < 65536:
            raise SettingsError(
                f"{hit[1]}: {hit[0]!r} is not a port number; fix: use e.g. {default}."
            )
        return number

    host_hit = from_env("DAPR_RUNTIME_HOST")
    if host_hit is not None:
        note("dapr.grpc_address", host_hit[1])
        note("dapr.http_url", host_hit[1])
    token_hit = from_env("DAPR_API_TOKEN")
    if token_hit is not None:
        sources["dapr.api_token"] = token_hit[1]
    timeout_hit = from_env("DAPR_HEALTH_TIMEOUT")
    if timeout_hit is not None:
        # Set on purpose (even to the SDK's own 60): the pub/sub client then waits that long
        # for the sidecar instead of its short default.
        sources["dapr.health_timeout"] = timeout_hit[1]
    http_port = port("DAPR_HTTP_PORT", 3500, "dapr.http_url")
    grpc_port = port("DAPR_GRPC_PORT", 50001, "dapr.grpc_address")
    grpc_hit = from_env("DAPR_GRPC_ENDPOINT")
    if grpc_hit is not None:  # wins over host:port, as in the SDK
        sources["dapr.grpc_address"] = grpc_hit[1]
    http_hit = from_env("DAPR_HTTP_ENDPOINT")
    if http_hit is not None:
        sources["dapr.http_url"] = http_hit[1]
    return DaprSettings(
        runtime_host=host_hit[0] if host_hit else "127.0.0.1",
        http_port=http_port,
        grpc_port=grpc_port,
        api_token=Secret(token_hit[0]) if token_hit else None,
        health_timeout=(
            _validate_timeout(timeout_hit[0], timeout_hit[1], "DAPR_HEALTH_TIMEOUT")
            if timeout_hit
            else 60.0
        ),
        grpc_endpoint=grpc_hit[0] if grpc_hit else None,
        http_endpoint=http_hit[0] if http_hit else None,
    )


__all__ = [
    "CHANNELS",
    "DEFAULT_API_URL",
    "DEFAULT_CHANNEL",
    "DEFAULT_COMMAND_TOPIC",
    "DEFAULT_PUBSUB",
    "DEFAULT_REPLY_TOPIC",
    "DEFAULT_STATE_PATH",
    "DEFAULT_STREAM_URL",
    "DEFAULT_SYMBOLS",
    "DEFAULT_TIMEOUT",
    "DEFAULT_TOPIC",
    "Config",
    "ConfigOptions",
    "DaprSettings",
    "Secret",
    "load_config",
    "load_settings_file",
    "packaged_settings_path",
    "validate_channel",
    "validate_symbols",
    "validate_topic",
    "validate_url",
]
