"""Resolved configuration: command-line option > environment > ``.env`` > settings file > default.

Every subcommand resolves the same :class:`Config` through :func:`load_config`, so the layering and
the error messages are identical everywhere, and ``-v`` can say where each value came from
(:meth:`Config.describe`).

One table drives it all. Each :class:`Field` in :data:`FIELDS` names the attribute, its flag, its
environment variable(s), its settings-file key, its default, its parser and its help; the
resolver walks the layers for each field and hands whatever it finds (a flag's value, an
environment string, a JSON value, the default) to that one parser. So a value is checked the same
way whichever layer it came from, and adding a setting is one table row. The commands generate
their shared Typer options from the same rows (:attr:`Field.param_decls`, :attr:`Field.help`,
:attr:`Field.metavar`, :attr:`Field.annotation`).

Stable API (other modules rely on it)::

    ConfigOptions(api_url=None, settings=None, env_file=None, state=None, pubsub=None,
                  command_topic=None, reply_topic=None, timeout=None, stream_url=None,
                  channel=None, symbols=None, topic=None, project=None, channels=None,
                  bus=None, api_grpc=None, api_grpc_tls=None, keepalive=None)
    load_config(options=None, *, environ=None, cwd=None) -> Config
    Config: api_url, api_key, alpaca_key, alpaca_secret, stream_url, channel (the first of
            channels), channels, symbols, topic, project, pubsub, command_topic, reply_topic,
            timeout, bus, api_grpc, api_grpc_tls, keepalive, state_path, settings_path,
            env_file, dapr (DaprSettings), sources, secret_values(), describe(), chosen_bus()
    DaprSettings: runtime_host, http_port, grpc_port, api_token, health_timeout, grpc_endpoint,
                  http_endpoint, grpc_address, http_url
    Secret: a string whose repr/str is redacted; ``.get_secret_value()`` reveals it
    Field, FIELDS, DAPR_FIELDS, field(name) -> Field; BusChoice
    validate_channel / validate_channels / validate_symbols / validate_topic / validate_url /
    validate_http_url / is_valid_symbol
    CHANNELS, BUSES, DEFAULT_* constants

Why not pydantic(-settings): it cannot report the source of each value, its messages had to be
taken apart again to name our field, and importing it cost as much as the rest of start-up. This
module imports only the standard library at module level; python-dotenv loads when
:func:`load_config` finds a ``.env`` file, so that ``alpaca-md --help`` stays light.

An option left at ``None`` means "not given": a layer overrides only what it actually set
(httpx's ``UNSET`` idea). The ``.env`` file is read with ``dotenv_values`` and never written into
``os.environ`` (``override=False`` semantics: the real environment wins). An empty environment
variable counts as not set.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any, Final, Literal

from alpaca_cli.alpaca.names import CHANNELS, is_valid_symbol
from alpaca_cli.errors import SettingsError

BUSES: Final = ("auto", "gateway", "dapr")
"""``--bus`` choices: ``auto`` picks Dapr beside a sidecar, the gateway otherwise."""
DEFAULT_API_URL: Final = "http://localhost:5001"
DEFAULT_STREAM_URL: Final = "wss://stream.data.alpaca.markets/v1beta3/crypto/us"
DEFAULT_CHANNEL: Final = "orderbooks"
DEFAULT_SYMBOLS: Final = ("BTC/USD", "ETH/USD", "SOL/USD", "DOGE/USD", "AVAX/USD")
DEFAULT_TOPIC: Final = "alpaca-ticks"
DEFAULT_PUBSUB: Final = "pubsub"
DEFAULT_COMMAND_TOPIC: Final = "command.websocketmanagercontroller"
DEFAULT_REPLY_TOPIC: Final = "response.websocketmanagercontroller"
DEFAULT_TIMEOUT: Final = 15.0
DEFAULT_BUS: Final = "auto"
DEFAULT_API_GRPC_PORT: Final = 5002
DEFAULT_KEEPALIVE: Final = 60.0
DEFAULT_STATE_PATH: Final = Path(".alpaca-md") / "state.json"
DEFAULT_SETTINGS_PATH: Final = Path("settings") / "alpaca.json"
DEFAULT_ENV_FILE: Final = Path(".env")

_TOPIC = re.compile(r"^\S+$")
_MASK = "**********"
# Variables ``dapr run`` sets for its app: any of them names a sidecar for ``--bus auto``.
_SIDECAR_FIELDS: Final = ("grpc_port", "grpc_endpoint", "http_port")


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


# ---------------------------------------------------------------------------------------------
# Validation: one-line errors naming where the value came from, the field and the fix. Every
# parser takes ``(value, source, field_name)``: the value as the layer holds it (a flag's typed
# value, an environment string, a JSON value), where it came from, and the name to report.


def _error(source: str, field_name: str, problem: str, fix: str) -> SettingsError:
    return SettingsError(f"{source}: field '{field_name}': {problem}; fix: {fix}.")


def _text(value: object, source: str, field_name: str, example: str) -> str:
    """The value as a string; a JSON number or list where a string belongs is named by type only
    (the value itself might be a misplaced secret)."""
    if not isinstance(value, str):
        raise _error(
            source,
            field_name,
            f"expected a string, not a JSON {_json_type(value)}",
            f'write it as a string, e.g. "{example}"',
        )
    return value


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, dict):
        return "object"
    return "null" if value is None else type(value).__name__


def _url(
    value: object, source: str, field_name: str, schemes: tuple[str, ...], what: str, example: str
) -> str:
    from urllib.parse import urlsplit

    text = _text(value, source, field_name, example)
    parts = urlsplit(text)
    if parts.scheme not in schemes or not parts.netloc:
        raise _error(source, field_name, f"{text!r} is not {what}", f"use e.g. {example}")
    return text


def validate_url(value: str, source: str, field_name: str = "url") -> str:
    """A WebSocket URL (ws/wss) with a host."""
    what = "a ws:// or wss:// URL"
    return _url(value, source, field_name, ("ws", "wss"), what, DEFAULT_STREAM_URL)


def validate_http_url(value: str, source: str, field_name: str = "api_url") -> str:
    """The gateway base URL: http or https with a host; a trailing ``/`` is dropped."""
    what = "an http(s) URL"
    return _url(value, source, field_name, ("http", "https"), what, DEFAULT_API_URL).rstrip("/")


def validate_channel(value: str, source: str, field_name: str = "channel") -> str:
    """One of Alpaca's crypto channels (:data:`CHANNELS`)."""
    text = _text(value, source, field_name, DEFAULT_CHANNEL)
    if text not in CHANNELS:
        raise _error(
            source, field_name, f"{text!r} is not a channel", f"use one of {', '.join(CHANNELS)}"
        )
    return text


def validate_channels(
    values: str | Iterable[str], source: str, field_name: str = "channel"
) -> tuple[str, ...]:
    """One or more channels: a comma-separated string, or items that may each hold commas.

    ``--channel trades --channel quotes``, ``--channel trades,quotes`` and
    ``ALPACA_MD_CHANNEL=trades,quotes`` all mean the same; repeats are dropped, order kept.
    """
    pieces = [values] if isinstance(values, str) else list(values)
    names = [
        validate_channel(name.strip(), source, field_name)
        for piece in pieces
        for name in _text(piece, source, field_name, DEFAULT_CHANNEL).split(",")
        if name.strip()
    ]
    if not names:
        raise _error(source, field_name, "no channel", f"give at least one, e.g. {DEFAULT_CHANNEL}")
    return tuple(dict.fromkeys(names))


def validate_symbols(
    values: Iterable[str], source: str, field_name: str = "symbols"
) -> tuple[str, ...]:
    """Symbols as Alpaca accepts them (``BTC/USD`` upper case, or ``*``); at least one.

    The one symbol check of the CLI: config, ``subscribe`` and ``tail --symbol`` all use it, so a
    symbol one of them accepts is never silently refused or filtered out by another.
    """
    result = tuple(values)
    if not result:
        raise _error(source, field_name, "no symbols", "give at least one, e.g. BTC/USD")
    for symbol in result:
        if not isinstance(symbol, str) or not is_valid_symbol(symbol):
            raise _error(
                source,
                field_name,
                f"{symbol!r} is not a BASE/QUOTE symbol",
                "write it in upper case like BTC/USD (or * for all)",
            )
    return result


def validate_topic(value: str, source: str, field_name: str = "topic") -> str:
    """A pub/sub topic (or component) name: non-empty, no whitespace."""
    text = _text(value, source, field_name, DEFAULT_TOPIC)
    if not _TOPIC.match(text):
        raise _error(
            source,
            field_name,
            f"{text!r} is not a topic name",
            "use a non-empty name without spaces, e.g. alpaca-ticks",
        )
    return text


def _seconds(value: object, source: str, field_name: str, *, zero: bool, example: str) -> float:
    """A finite number of seconds, from a flag (float), env (str) or JSON (number)."""
    try:
        number = math.nan if isinstance(value, bool) else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = math.nan
    if math.isfinite(number) and (number > 0 or (zero and number == 0)):
        return number
    what = "0 (off) or a positive number of seconds" if zero else "a positive number of seconds"
    raise _error(source, field_name, f"{value!r} is not {what}", f"use e.g. {example}")


def _timeout(value: object, source: str, field_name: str) -> float:
    return _seconds(value, source, field_name, zero=False, example="15")


def _keepalive(value: object, source: str, field_name: str) -> float:
    return _seconds(value, source, field_name, zero=True, example="60")


def _port(value: object, source: str, field_name: str, example: int) -> int:
    number = -1
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isdigit():
        number = int(value)
    if not 0 < number < 65536:
        raise _error(source, field_name, f"{value!r} is not a port number", f"use e.g. {example}")
    return number


def _string(value: object, source: str, field_name: str) -> str:
    """Any non-empty string (a project path, a host, an endpoint)."""
    text = _text(value, source, field_name, "...")
    if not text:
        raise _error(source, field_name, "empty", "give a value or leave the setting out")
    return text


def _secret(value: object, source: str, field_name: str) -> Secret:
    # Only the environment and .env hold secrets, and both are strings: nothing to echo.
    return Secret(_text(value, source, field_name, "..."))


def _bus(value: object, source: str, field_name: str) -> str:
    text = _text(value, source, field_name, DEFAULT_BUS)
    if text not in BUSES:
        raise _error(source, field_name, f"{text!r} is not a bus", f"use one of {', '.join(BUSES)}")
    return text


_TRUE: Final = frozenset({"1", "true", "yes", "on"})
_FALSE: Final = frozenset({"0", "false", "no", "off"})


def _bool(value: object, source: str, field_name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _error(source, field_name, f"{value!r} is not true or false", "use true or false")


def _host_port(value: object, source: str, field_name: str) -> str:
    """``HOST:PORT`` (``[::1]:5002`` for IPv6), returned as given once checked."""
    text = _text(value, source, field_name, f"localhost:{DEFAULT_API_GRPC_PORT}")
    host, sep, port = text.rpartition(":")
    if not sep or not host or host in ("[", "[]") or any(c.isspace() for c in host):
        raise _error(
            source,
            field_name,
            f"{text!r} is not HOST:PORT",
            f"use e.g. localhost:{DEFAULT_API_GRPC_PORT}",
        )
    _port(port, source, field_name, DEFAULT_API_GRPC_PORT)
    return text


def _path(value: object, source: str, field_name: str) -> Path:
    if isinstance(value, Path):
        return value
    return Path(_string(value, source, field_name))


# ---------------------------------------------------------------------------------------------
# The field table.

Parser = Callable[[Any, str, str], Any]
"""``(value, source, field_name) -> parsed value``; raises a one-line :class:`SettingsError`."""
Derived = Callable[[Mapping[str, Any]], tuple[Any, str]]
"""A default computed from fields resolved before: ``values -> (value, why)``."""


@dataclass(frozen=True, slots=True)
class Field:
    """One setting: where each layer finds it, how it is checked, and how ``--help`` shows it.

    The resolver (:func:`load_config`) and the commands' shared options are both generated from
    these rows, so a flag, its environment variable, its settings key and its help cannot drift
    apart. Build a ``typer.Option`` from a row as
    ``Annotated[f.annotation, typer.Option(*f.param_decls, help=f.help, metavar=f.metavar,
    show_default=False)]`` with default ``None``; the value goes to ``ConfigOptions`` under
    :attr:`options_name`.
    """

    name: str
    """Attribute on :class:`Config` (for Dapr rows: on :class:`DaprSettings`)."""
    kind: type
    """What the option holds: ``str``, ``float``, ``int``, ``Path``, ``bool`` or ``list`` (of
    ``str``; the flag may be repeated)."""
    parse: Parser
    """Checks and converts a value from any layer, default included."""
    help: str = ""
    """One sentence ending in ``[env X; default Y]``, as ``--help`` shows it."""
    flag: str | None = None
    """The long option (``--api-url``); ``None``: not settable on the command line. Also the
    source reported for a value given that way."""
    envs: tuple[str, ...] = ()
    """Environment (and ``.env``) names. One name usually; with :attr:`env_join`, the parts of
    one value (``VIRTUFIN_API_HOST`` + ``VIRTUFIN_API_GRPC_PORT``)."""
    key: str | None = None
    """Key in the settings file; ``None``: the file cannot set it."""
    default: Any = None
    """Used when no layer sets the field (and no :attr:`derive`)."""
    derive: Derived | None = None
    """A default that depends on fields above it in the table (``api_grpc`` on ``api_url``)."""
    secret: bool = False
    """Never shown: ``-v`` prints set/not set; only the environment or ``.env`` may give it."""
    metavar: str | None = None
    choices: tuple[str, ...] = ()
    """The allowed values, for ``--help`` and completion (the parser enforces them)."""
    option: str | None = None
    """Attribute on :class:`ConfigOptions` when it differs from :attr:`name` (``state``)."""
    argument: str | None = None
    """Given as positional arguments instead of a flag (``SYMBOL...``): its source label."""
    old_keys: tuple[str, ...] = ()
    """Settings keys still accepted for it (``channel`` beside ``channels``)."""
    env_join: str | None = None
    """Joins the parts named by :attr:`envs` into one value; a missing part comes from the
    default."""
    label: str | None = None
    """The field's name in error messages outside the settings file, if not :attr:`name`."""

    @property
    def options_name(self) -> str:
        """The :class:`ConfigOptions` attribute that carries this field's flag value."""
        return self.option or self.name

    @property
    def param_decls(self) -> tuple[str, ...]:
        """What ``typer.Option(*...)`` takes: a bool gets its ``--no-`` form."""
        if self.flag is None:
            return ()
        if self.kind is bool:
            return (f"{self.flag}/--no-{self.flag.removeprefix('--')}",)
        return (self.flag,)

    @property
    def annotation(self) -> Any:
        """The option's Python type, ``None`` meaning "not given"."""
        return (list[str] if self.kind is list else self.kind) | None

    @property
    def keys(self) -> tuple[str, ...]:
        """Every settings key that sets this field, the current one first."""
        return ((self.key,) if self.key else ()) + self.old_keys


def _grpc_default(values: Mapping[str, Any]) -> tuple[str, str]:
    from urllib.parse import urlsplit

    host = urlsplit(values["api_url"]).hostname or "localhost"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{DEFAULT_API_GRPC_PORT}", "default (host of api_url)"


def _tls_default(values: Mapping[str, Any]) -> tuple[bool, str]:
    https = str(values["api_url"]).startswith("https://")
    return https, "default (api_url is https)" if https else "default"


FIELDS: Final[tuple[Field, ...]] = (
    Field(
        "api_url",
        str,
        validate_http_url,
        "Gateway base URL [env VIRTUFIN_API_URL; default http://localhost:5001].",
        flag="--api-url",
        envs=("VIRTUFIN_API_URL",),
        key="api_url",
        default=DEFAULT_API_URL,
        metavar="URL",
    ),
    Field(
        "api_key",
        str,
        _secret,
        "Gateway API key, sent as x-api-key [env VIRTUFIN_API_KEY; never a flag].",
        envs=("VIRTUFIN_API_KEY",),
        secret=True,
    ),
    Field(
        "alpaca_key",
        str,
        _secret,
        "Alpaca API key id [env ALPACA_API_KEY; never a flag].",
        envs=("ALPACA_API_KEY",),
        secret=True,
    ),
    Field(
        "alpaca_secret",
        str,
        _secret,
        "Alpaca API secret [env ALPACA_API_SECRET; never a flag].",
        envs=("ALPACA_API_SECRET",),
        secret=True,
    ),
    Field(
        "stream_url",
        str,
        validate_url,
        "Alpaca stream URL, ws:// or wss:// [env ALPACA_STREAM_URL; settings 'url'].",
        # Not --url: deploy and run use a URL option for the worker package (--package-url).
        flag="--alpaca-url",
        envs=("ALPACA_STREAM_URL",),
        key="url",
        default=DEFAULT_STREAM_URL,
        metavar="URL",
    ),
    Field(
        "channels",
        list,
        validate_channels,
        f"Alpaca channel: {', '.join(CHANNELS)}; repeat or comma-separate for several "
        "[env ALPACA_MD_CHANNEL; settings 'channels'].",
        flag="--channel",
        envs=("ALPACA_MD_CHANNEL",),
        key="channels",
        old_keys=("channel",),
        default=(DEFAULT_CHANNEL,),
        metavar="CHANNEL",
        choices=CHANNELS,
        label="channel",
    ),
    Field(
        "symbols",
        list,
        validate_symbols,
        "Symbols as BASE/QUOTE in upper case, or * for all [settings 'symbols'].",
        argument="SYMBOL...",
        key="symbols",
        default=DEFAULT_SYMBOLS,
        metavar="SYMBOL...",
    ),
    Field(
        "topic",
        str,
        validate_topic,
        "Topic the stream is published to [env ALPACA_MD_TOPIC; settings 'topic'].",
        flag="--topic",
        envs=("ALPACA_MD_TOPIC",),
        key="topic",
        default=DEFAULT_TOPIC,
        metavar="TOPIC",
    ),
    Field(
        "project",
        str,
        _string,
        "Controller worker project directory [env ALPACA_MD_PROJECT; settings 'project'].",
        flag="--project",
        envs=("ALPACA_MD_PROJECT",),
        key="project",
        metavar="DIR",
    ),
    Field(
        "pubsub",
        str,
        validate_topic,
        "Dapr pub/sub component name [env ALPACA_MD_PUBSUB; default pubsub].",
        flag="--pubsub",
        envs=("ALPACA_MD_PUBSUB",),
        key="pubsub",
        default=DEFAULT_PUBSUB,
        metavar="NAME",
    ),
    Field(
        "command_topic",
        str,
        validate_topic,
        "Controller command topic [env ALPACA_MD_COMMAND_TOPIC; "
        "default command.websocketmanagercontroller].",
        flag="--command-topic",
        envs=("ALPACA_MD_COMMAND_TOPIC",),
        key="command_topic",
        default=DEFAULT_COMMAND_TOPIC,
        metavar="TOPIC",
    ),
    Field(
        "reply_topic",
        str,
        validate_topic,
        "Controller reply topic [env ALPACA_MD_REPLY_TOPIC; "
        "default response.websocketmanagercontroller].",
        flag="--reply-topic",
        envs=("ALPACA_MD_REPLY_TOPIC",),
        key="reply_topic",
        default=DEFAULT_REPLY_TOPIC,
        metavar="TOPIC",
    ),
    Field(
        "timeout",
        float,
        _timeout,
        "Seconds to wait for a reply [env ALPACA_MD_TIMEOUT; default 15].",
        flag="--timeout",
        envs=("ALPACA_MD_TIMEOUT",),
        key="timeout",
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
    ),
    Field(
        "bus",
        str,
        _bus,
        "Pub/sub path: auto (Dapr when DAPR_GRPC_PORT, DAPR_GRPC_ENDPOINT or DAPR_HTTP_PORT "
        "names a sidecar, else the gateway), gateway or dapr [env ALPACA_MD_BUS; default auto].",
        flag="--bus",
        envs=("ALPACA_MD_BUS",),
        key="bus",
        default=DEFAULT_BUS,
        metavar="[auto|gateway|dapr]",
        choices=BUSES,
    ),
    Field(
        "api_grpc",
        str,
        _host_port,
        "Gateway gRPC address HOST:PORT [env VIRTUFIN_API_HOST, VIRTUFIN_API_GRPC_PORT; "
        "default the host of the API URL, port 5002].",
        flag="--api-grpc",
        envs=("VIRTUFIN_API_HOST", "VIRTUFIN_API_GRPC_PORT"),
        env_join=":",
        key="api_grpc",
        derive=_grpc_default,
        metavar="HOST:PORT",
    ),
    Field(
        "api_grpc_tls",
        bool,
        _bool,
        "Use TLS to the gateway's gRPC port [env ALPACA_MD_API_GRPC_TLS; "
        "default on when the API URL is https].",
        flag="--api-grpc-tls",
        envs=("ALPACA_MD_API_GRPC_TLS",),
        key="api_grpc_tls",
        derive=_tls_default,
    ),
    Field(
        "keepalive",
        float,
        _keepalive,
        "Seconds between keepalives that refresh the connection record; 0 = off "
        "[env ALPACA_MD_KEEPALIVE; default 60].",
        flag="--keepalive",
        envs=("ALPACA_MD_KEEPALIVE",),
        key="keepalive",
        default=DEFAULT_KEEPALIVE,
        metavar="SECONDS",
    ),
    Field(
        "state_path",
        Path,
        _path,
        "State file [env ALPACA_MD_STATE; default ./.alpaca-md/state.json].",
        flag="--state",
        option="state",
        envs=("ALPACA_MD_STATE",),
        default=DEFAULT_STATE_PATH,
        metavar="PATH",
    ),
    Field(
        "settings_path",
        Path,
        _path,
        "Stream settings JSON [env ALPACA_MD_SETTINGS; default ./settings/alpaca.json, "
        "else the packaged copy].",
        flag="--settings",
        option="settings",
        envs=("ALPACA_MD_SETTINGS",),
        metavar="PATH",
    ),
    Field(
        "env_file",
        Path,
        _path,
        ".env file read below the environment [env ALPACA_MD_ENV_FILE; "
        "default ./.env when present].",
        flag="--env-file",
        envs=("ALPACA_MD_ENV_FILE",),
        metavar="PATH",
    ),
)
"""Every setting of :class:`Config`, in the order ``-v`` lists them."""

DAPR_FIELDS: Final[tuple[Field, ...]] = (
    Field("runtime_host", str, _string, envs=("DAPR_RUNTIME_HOST",), default="127.0.0.1"),
    Field(
        "http_port",
        int,
        lambda v, s, n: _port(v, s, n, 3500),
        envs=("DAPR_HTTP_PORT",),
        default=3500,
    ),
    Field(
        "grpc_port",
        int,
        lambda v, s, n: _port(v, s, n, 50001),
        envs=("DAPR_GRPC_PORT",),
        default=50001,
    ),
    Field("api_token", str, _secret, envs=("DAPR_API_TOKEN",), secret=True),
    Field(
        "health_timeout",
        float,
        _timeout,
        envs=("DAPR_HEALTH_TIMEOUT",),
        default=60.0,
        label="DAPR_HEALTH_TIMEOUT",
    ),
    Field("grpc_endpoint", str, _string, envs=("DAPR_GRPC_ENDPOINT",)),
    Field("http_endpoint", str, _string, envs=("DAPR_HTTP_ENDPOINT",)),
)
"""The Dapr SDK's own variables (environment and ``.env`` only), resolved by the same loop so a
``.env`` file counts for them too."""

_BY_NAME: Final = {f.name: f for f in FIELDS}
_BY_KEY: Final = {key: f for f in FIELDS for key in f.keys}


def field(name: str) -> Field:
    """The :data:`FIELDS` row of ``name`` (a :class:`Config` attribute); ``KeyError`` if none."""
    return _BY_NAME[name]


# ---------------------------------------------------------------------------------------------
# The public value objects.


@dataclass(frozen=True, slots=True)
class ConfigOptions:
    """What the command line gave; ``None`` everywhere means "not given".

    ``channel`` is the older single-channel spelling of ``channels``: give one or the other.
    """

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
    channels: Sequence[str] | None = None
    bus: str | None = None
    api_grpc: str | None = None
    api_grpc_tls: bool | None = None
    keepalive: float | None = None

    def __post_init__(self) -> None:
        if self.channel is not None:
            if self.channels is not None:
                raise TypeError("ConfigOptions: give channel or channels, not both")
            object.__setattr__(self, "channels", (self.channel,))


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
class BusChoice:
    """Which bus an invocation uses and why, for ``-v`` (see :meth:`Config.chosen_bus`)."""

    kind: Literal["gateway", "dapr"]
    reason: str


@dataclass(frozen=True, slots=True)
class Config:
    """Every value a command may need, each with the layer it came from in :attr:`sources`."""

    api_url: str
    api_key: Secret | None
    alpaca_key: Secret | None
    alpaca_secret: Secret | None
    stream_url: str
    channels: tuple[str, ...]
    """The subscribed channels, at least one, in the order given."""
    symbols: tuple[str, ...]
    topic: str
    project: str | None
    pubsub: str
    command_topic: str
    reply_topic: str
    timeout: float
    bus: str
    """``auto``, ``gateway`` or ``dapr`` as configured; :meth:`chosen_bus` resolves ``auto``."""
    api_grpc: str
    """The gateway's gRPC ``HOST:PORT``."""
    api_grpc_tls: bool
    keepalive: float
    """Seconds between keepalive ``send_raw`` calls on a streaming run; 0 = off."""
    state_path: Path
    settings_path: Path | None
    env_file: Path | None
    dapr: DaprSettings
    sources: Mapping[str, str] = dataclass_field(default_factory=dict)
    """Field name -> where it came from: ``--api-url``, ``env VIRTUFIN_API_URL``,
    ``.env file PATH (NAME)``, ``settings PATH (field)`` or ``default``. Every :data:`FIELDS`
    name is present; a ``dapr.*`` name only when a layer set it (``dapr.grpc_address`` and
    ``dapr.http_url`` name every variable they were built from)."""

    @property
    def channel(self) -> str:
        """The first channel: what single-channel callers subscribe to."""
        return self.channels[0]

    def secret_values(self) -> list[str]:
        """Every secret this configuration holds, for :mod:`alpaca_cli.redact`."""
        found = [self.api_key, self.alpaca_key, self.alpaca_secret, self.dapr.api_token]
        return [s.get_secret_value() for s in found if s]

    def chosen_bus(self) -> BusChoice:
        """The bus to open: ``--bus`` as given, or for ``auto`` Dapr when any layer names a
        sidecar (``DAPR_GRPC_PORT``, ``DAPR_GRPC_ENDPOINT`` or ``DAPR_HTTP_PORT``, as
        ``dapr run`` sets them) and the gateway otherwise."""
        if self.bus in ("gateway", "dapr"):
            kind: Literal["gateway", "dapr"] = "dapr" if self.bus == "dapr" else "gateway"
            return BusChoice(kind, f"chosen by {self.sources.get('bus', 'default')}")
        for name in _SIDECAR_FIELDS:
            source = self.sources.get(f"dapr.{name}")
            if source is not None:
                return BusChoice("dapr", f"auto: {source} names a Dapr sidecar")
        return BusChoice(
            "gateway",
            "auto: no DAPR_GRPC_PORT, DAPR_GRPC_ENDPOINT or DAPR_HTTP_PORT names a sidecar",
        )

    def describe(self) -> list[tuple[str, str, str]]:
        """``(name, shown value, source)`` rows for ``-v``; secrets show as set/not set only."""
        rows: list[tuple[str, str, str]] = []
        for f in FIELDS:
            value: Any = getattr(self, f.name)
            if f.secret:
                shown = "set (hidden)" if value else "not set"
            elif isinstance(value, tuple):
                shown = ",".join(value)
            elif isinstance(value, bool):
                shown = "true" if value else "false"
            else:
                shown = "" if value is None else str(value)
            rows.append((f.name, shown, self.sources.get(f.name, "default")))
            if f.name == "bus":
                choice = self.chosen_bus()
                rows.append(("bus.chosen", choice.kind, choice.reason))
        dapr = self.dapr
        token = "set (hidden)" if dapr.api_token else "not set"
        built = {"grpc_address": dapr.grpc_address, "http_url": dapr.http_url, "api_token": token}
        for name, shown in built.items():
            rows.append((f"dapr.{name}", shown, self.sources.get(f"dapr.{name}", "default")))
        return rows


# ---------------------------------------------------------------------------------------------
# Files.


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


def _unknown_key(path: Path, key: str) -> SettingsError:
    import difflib

    known = sorted(_BY_KEY)
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        return SettingsError(f"{path}: unknown key {key!r}; fix: did you mean '{close[0]}'?")
    return SettingsError(
        f"{path}: unknown key {key!r}; fix: remove it, or use one of {', '.join(known)}."
    )


def load_settings_file(path: Path) -> dict[str, Any]:
    """Read and check one settings file; returns field name -> parsed value for the keys it sets.

    Each value goes through its :class:`Field`'s parser, as a flag's or a variable's would. A key
    no field knows is an error, not ignored: a typo (``chanel``) would otherwise fall back to the
    default silently.

    Returns:
        Settings key (as written) -> parsed value; a key set to ``null`` is left out.

    Raises:
        SettingsError: unreadable file, invalid JSON, an unknown key (with a "did you mean"), a
            key given twice under two names, or an invalid value (file, field, fix).
    """
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
    parsed: dict[str, Any] = {}
    seen: dict[str, str] = {}
    for key, value in raw.items():
        f = _BY_KEY.get(key)
        if f is None:
            raise _unknown_key(path, key)
        if f.name in seen:
            raise SettingsError(
                f"{path}: keys '{seen[f.name]}' and '{key}' both set {f.name}; "
                f"fix: keep only '{f.key}'."
            )
        seen[f.name] = key
        if f.kind is list and key == f.key and not isinstance(value, list | None):
            example = json.dumps(list(f.default)[:2])
            raise _error(
                str(path),
                key,
                f"{value!r} is not a list" if isinstance(value, str) else "expected a list",
                f"write it as a JSON list, e.g. {example}",
            )
        if value is not None:  # JSON null: as if the key were absent
            parsed[key] = f.parse(value, str(path), key)
    return parsed


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


# ---------------------------------------------------------------------------------------------
# Resolution: one loop over the table, the same walk through the layers for every field.


@dataclass(slots=True)
class _Layers:
    """What each layer holds; the files fill in as the resolver learns where they are."""

    options: ConfigOptions
    environ: Mapping[str, str]
    env_file: Path | None = None
    dotenv: Mapping[str, str] = dataclass_field(default_factory=dict)
    settings_path: Path | None = None
    settings: Mapping[str, Any] = dataclass_field(default_factory=dict)

    def variable(self, name: str) -> tuple[str, str] | None:
        """``(value, source)`` of a variable: the environment, else ``.env``; empty = unset."""
        if self.environ.get(name):
            return self.environ[name], f"env {name}"
        if self.dotenv.get(name):
            return self.dotenv[name], f".env file {self.env_file} ({name})"
        return None

    def resolve(self, f: Field, values: Mapping[str, Any], prefix: str = "") -> tuple[Any, str]:
        """The field's parsed value and its source, from the first layer that sets it.

        Args:
            f: the table row.
            values: the fields resolved so far (for :attr:`Field.derive`).
            prefix: put before the name in messages (``dapr.``).
        """
        name = prefix + (f.label or f.name)
        if f.flag is not None or f.argument is not None:
            given = getattr(self.options, f.options_name)
            if given is not None:
                label = f.flag or f.argument or ""
                return f.parse(given, label, name), label
        hit = self._from_variables(f, values)
        if hit is not None:
            return f.parse(hit[0], hit[1], name), hit[1]
        for key in f.keys:
            if key in self.settings:  # parsed when the file was read
                return self.settings[key], f"settings {self.settings_path} ({key})"
        value, why = f.derive(values) if f.derive is not None else (f.default, "default")
        return (None if value is None else f.parse(value, why, name)), why

    def _from_variables(self, f: Field, values: Mapping[str, Any]) -> tuple[str, str] | None:
        hits = [self.variable(name) for name in f.envs]
        if f.env_join is None:
            return next((hit for hit in hits if hit is not None), None)
        if not any(hits):
            return None
        # Parts of one value (host and port): a part not set comes from the default.
        default = f.derive(values)[0] if f.derive is not None else f.default
        parts = str(default).rsplit(f.env_join, len(f.envs) - 1)
        joined = f.env_join.join(
            hit[0] if hit else part for hit, part in zip(hits, parts, strict=True)
        )
        return joined, ", ".join(hit[1] for hit in hits if hit)


def load_config(
    options: ConfigOptions | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Config:
    """Resolve every setting through the five layers.

    The ``.env`` file is found first (flag or environment only), then the settings file (flag,
    environment or ``.env``), then every other :data:`FIELDS` row in table order, then the
    :data:`DAPR_FIELDS`.

    Args:
        options: what the command line gave (``None`` fields = not given).
        environ: the process environment (default ``os.environ``); never modified.
        cwd: where relative paths (``./.env``, ``settings/alpaca.json``, the state file) live.

    Raises:
        SettingsError: a file named by an option is missing, or a value is invalid; the message
            names the file or variable, the field and the fix.
    """
    import os

    layers = _Layers(options or ConfigOptions(), os.environ if environ is None else environ)
    base = Path.cwd() if cwd is None else cwd
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}

    given, sources["env_file"] = layers.resolve(field("env_file"), values)
    if given is not None:
        layers.env_file = given if given.is_absolute() else base / given
        if not layers.env_file.is_file():
            raise SettingsError(f"{given}: no such .env file; fix: create it or drop --env-file.")
    elif (base / DEFAULT_ENV_FILE).is_file():
        layers.env_file = base / DEFAULT_ENV_FILE
    if layers.env_file is not None:
        layers.dotenv = _read_env_file(layers.env_file)

    given, sources["settings_path"] = layers.resolve(field("settings_path"), values)
    if given is not None:
        layers.settings_path = given if given.is_absolute() else base / given
        if not layers.settings_path.is_file():
            raise SettingsError(
                f"{given}: no such settings file; fix: pass an existing file with --settings."
            )
    else:
        local = base / DEFAULT_SETTINGS_PATH
        packaged = packaged_settings_path()
        layers.settings_path = local if local.is_file() else packaged
        if not layers.settings_path.is_file():  # pragma: no cover - broken installation
            layers.settings_path = None
    if layers.settings_path is not None:
        layers.settings = load_settings_file(layers.settings_path)

    for f in FIELDS:
        if f.name not in ("env_file", "settings_path"):
            values[f.name], sources[f.name] = layers.resolve(f, values)
    if not values["state_path"].is_absolute():
        values["state_path"] = base / values["state_path"]
    values["env_file"], values["settings_path"] = layers.env_file, layers.settings_path

    return Config(**values, dapr=_dapr_settings(layers, sources), sources=sources)


def _dapr_settings(layers: _Layers, sources: dict[str, str]) -> DaprSettings:
    """The Dapr rows through the same loop; only what a layer set gets a ``dapr.*`` source."""
    found: dict[str, Any] = {}
    for f in DAPR_FIELDS:
        value, source = layers.resolve(f, found, prefix="dapr.")
        if source != "default":
            sources[f"dapr.{f.name}"] = source
        if value is not None:
            found[f.name] = value

    # Each address names the variables it was built from: one shared key once labelled the HTTP
    # URL with DAPR_GRPC_PORT (whichever variable was read last) under -v.
    def built_from(endpoint: str, *parts: str) -> str | None:
        if endpoint in sources:  # wins over host:port, as in the SDK
            return sources[endpoint]
        named = [sources[p] for p in parts if p in sources]
        return ", ".join(named) if named else None

    for key, endpoint, port in (
        ("dapr.grpc_address", "dapr.grpc_endpoint", "dapr.grpc_port"),
        ("dapr.http_url", "dapr.http_endpoint", "dapr.http_port"),
    ):
        origin = built_from(endpoint, "dapr.runtime_host", port)
        if origin is not None:
            sources[key] = origin
    return DaprSettings(**found)


__all__ = [
    "BUSES",
    "CHANNELS",
    "DAPR_FIELDS",
    "DEFAULT_API_GRPC_PORT",
    "DEFAULT_API_URL",
    "DEFAULT_BUS",
    "DEFAULT_CHANNEL",
    "DEFAULT_COMMAND_TOPIC",
    "DEFAULT_KEEPALIVE",
    "DEFAULT_PUBSUB",
    "DEFAULT_REPLY_TOPIC",
    "DEFAULT_STATE_PATH",
    "DEFAULT_STREAM_URL",
    "DEFAULT_SYMBOLS",
    "DEFAULT_TIMEOUT",
    "DEFAULT_TOPIC",
    "FIELDS",
    "BusChoice",
    "Config",
    "ConfigOptions",
    "DaprSettings",
    "Field",
    "Secret",
    "field",
    "is_valid_symbol",
    "load_config",
    "load_settings_file",
    "packaged_settings_path",
    "validate_channel",
    "validate_channels",
    "validate_http_url",
    "validate_symbols",
    "validate_topic",
    "validate_url",
]
