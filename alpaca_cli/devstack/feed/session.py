"""The server side of an Alpaca stream session, as a pure state machine.

Spec: ``shared/spec/alpaca-crypto-stream.md``, sections "Session" and "Errors". The machine takes
decoded client messages and the current time, and answers with :data:`Action` values for the I/O
layer to carry out: control messages to send (each in a frame of its own), a close, a changed
subscription set, and log lines. It never touches a socket or reads a clock, so every rule is
tested with plain values (``tests/feed/test_session.py``).

States::

    CONNECTED --auth ok--> AUTHENTICATED
        |  \\--auth refused (406) / auth timeout (404)--> CLOSED
        \\-- close() from any state --> CLOSED

Rules, in the order they are checked for one message:

* not a JSON/msgpack map, or no known ``action`` -> 400 ``invalid syntax``;
* ``auth`` when authenticated -> 403; with bad credentials -> 402 (the connection stays open
  and the auth deadline keeps running); when the key holds all its connection slots -> 406 and
  the server closes; otherwise ``authenticated``;
* ``subscribe``/``unsubscribe`` before auth -> 401; a ``null`` or empty list requests nothing,
  on any key (Alpaca's Go SDK sends every channel key it knows, ``null`` for unused ones, and
  the real crypto endpoint accepts that: :func:`decode_request`); a non-empty list on a key
  that is not a channel of this feed -> 410; a channel whose value is not a list of
  well-formed symbols -> 400; a subscribe that
  would put more than ``symbol_limit`` symbols in a channel -> 405. Any of these rejects the
  whole request and sends no ``subscription`` message. Otherwise the change is applied
  (subscribe adds, unsubscribe removes) and answered with the whole current set.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import TypeAlias

import msgpack
import orjson

from alpaca_cli.alpaca.codec import (
    AuthRequest,
    ClientMessage,
    DecodeError,
    SubscribeRequest,
    decode_client_message,
    is_valid_symbol,
)
from alpaca_cli.alpaca.errors import ERRORS, ErrorCode
from alpaca_cli.alpaca.messages import CHANNELS, Error, Message, Subscription, Success
from alpaca_cli.devstack.feed.registry import KeyRegistry

__all__ = [
    "CHANNELS",
    "STREAM_CHANNELS",
    "Action",
    "Close",
    "Log",
    "Malformed",
    "Rules",
    "Send",
    "Session",
    "SessionState",
    "Subscribed",
    "Targets",
    "decode_request",
    "error_message",
    "redact_key",
]

# CHANNELS (the crypto endpoint's channels, in the order the ``subscription`` message lists them)
# is the core's one list: the server and the client cannot disagree about it.

STREAM_CHANNELS: tuple[str, ...] = ("trades", "quotes", "orderbooks")
"""Channels whose messages are paced by ``rate``; the bar channels follow the clock instead."""

WILDCARD = "*"


class SessionState(IntEnum):
    """Where a session is; see the module docstring for the transitions."""

    CONNECTED = 1
    AUTHENTICATED = 2
    CLOSED = 3


@dataclass(frozen=True, slots=True)
class Malformed:
    """Stands for a client frame the codec could not decode; the session answers it with 400.

    ``reason`` comes from :class:`~alpaca_cli.alpaca.codec.DecodeError`, which never echoes
    values (a client message carries the secret).
    """

    reason: str


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``message`` as a control frame of its own (a one-element array)."""

    message: Message


@dataclass(frozen=True, slots=True)
class Close:
    """Close the connection (with a close frame) after sending everything queued before."""

    reason: str


@dataclass(frozen=True, slots=True)
class Log:
    """One line for the server log. Never contains a secret."""

    text: str


@dataclass(frozen=True, slots=True)
class Targets:
    """What a subscription set asks the data source for, with ``*`` expanded.

    ``effective`` maps each channel to its symbols in a stable order (the universe's order for
    ``*``, then explicitly named extras), so a seeded market makes the same choices every time.
    """

    effective: Mapping[str, tuple[str, ...]]

    @property
    def streams(self) -> tuple[tuple[str, str], ...]:
        """Every (channel, symbol) pair of the rate-paced channels."""
        return tuple((c, s) for c in STREAM_CHANNELS for s in self.effective.get(c, ()))

    def symbols(self, channel: str) -> tuple[str, ...]:
        """The symbols ``channel`` delivers."""
        return self.effective.get(channel, ())

    def wants(self, channel: str, symbol: str) -> bool:
        """True when a message of ``channel`` for ``symbol`` should reach this client."""
        return symbol in self.effective.get(channel, ())

    @property
    def empty(self) -> bool:
        """True when nothing is subscribed."""
        return not any(self.effective.values())


@dataclass(frozen=True, slots=True)
class Subscribed:
    """The subscription set changed.

    ``new_books`` are order book symbols that now deliver data and did not before: each needs a
    full ``r: true`` snapshot before any delta. ``gone_books`` no longer deliver.
    """

    targets: Targets
    new_books: tuple[str, ...]
    gone_books: tuple[str, ...]


Action: TypeAlias = Send | Close | Subscribed | Log
"""What the I/O layer must do, in list order."""


@dataclass(frozen=True, slots=True)
class Rules:
    """The server's policy, shared by all its sessions.

    Parameters:
        key, secret: the one accepted pair, or None to accept any non-empty pair.
        auth_timeout: seconds from connecting to the ``404 auth timeout``.
        symbol_limit: most symbols per channel, ``*`` counting as the whole universe.
        universe: what ``*`` expands to.
    """

    key: str | None = None
    secret: str | None = None
    auth_timeout: float = 10.0
    symbol_limit: int | None = None
    universe: tuple[str, ...] = ()

    def __repr__(self) -> str:
        # The secret stays out of reprs, tracebacks and logs.
        return (
            f"Rules(key={self.key!r}, auth_timeout={self.auth_timeout}, "
            f"symbol_limit={self.symbol_limit}, universe={len(self.universe)} symbols)"
        )

    def credentials_ok(self, key: str, secret: str) -> bool:
        """Whether ``key``/``secret`` authenticate (constant-time when a pair is configured)."""
        if not key or not secret:
            return False
        if self.key is None or self.secret is None:
            return True
        key_ok = hmac.compare_digest(key.encode(), self.key.encode())
        secret_ok = hmac.compare_digest(secret.encode(), self.secret.encode())
        return key_ok and secret_ok


def error_message(code: ErrorCode) -> Error:
    """An error message with the exact text of the spec's table."""
    return Error(int(code), ERRORS[code].msg)


def decode_request(payload: bytes | bytearray | memoryview | str) -> ClientMessage | Malformed:
    """Decode one client frame the way Alpaca's server reads it, or say why it cannot.

    The shared codec is strict: a channel value must be a list of strings. Alpaca's Go SDK
    (``marketdata/stream/subscription.go``) sends every channel key it knows on every
    ``subscribe``, msgpack ``nil`` for the unused ones, and the real endpoint treats ``null`` as
    "nothing requested". Only when the strict decoder refuses a frame is it parsed again here,
    with ``null`` channels left out, so the common path costs nothing extra.
    """
    try:
        return decode_client_message(payload)
    except DecodeError as exc:
        stripped = _without_null_channels(payload)
        if stripped is None:
            return Malformed(exc.reason)
        try:
            return decode_client_message(stripped)
        except DecodeError as again:
            return Malformed(again.reason)


def _without_null_channels(payload: bytes | bytearray | memoryview | str) -> bytes | None:
    """The subscribe frame as JSON without its ``null`` keys; None if it is not such a frame."""
    try:
        if isinstance(payload, str) or bytes(payload).lstrip()[:1] in (b"{", b"["):
            obj = orjson.loads(payload)
        else:
            obj = msgpack.unpackb(bytes(payload))
    except Exception:  # any undecodable frame: the strict decoder's reason stands
        return None
    if not isinstance(obj, dict) or obj.get("action") not in ("subscribe", "unsubscribe"):
        return None
    if None not in obj.values():
        return None
    try:
        return orjson.dumps({k: v for k, v in obj.items() if v is not None})
    except TypeError:  # non-JSON values (bytes, timestamps): still malformed
        return None


def redact_key(key: str) -> str:
    """A key id shortened for logs: enough to tell keys apart, not enough to use one."""
    return key[:4] + "…" if len(key) > 4 else "…"


class Session:
    """One client connection's session, from the welcome to the close.

    Call :meth:`start` once right after the handshake, :meth:`receive` for every client frame,
    :meth:`poll` whenever :attr:`deadline` passes, and :meth:`close` when the connection ends
    (any way it ends: it frees the key's connection slot). Each returns the actions to carry out.

    Parameters:
        rules: the server policy.
        registry: the server's per-key connection slots.
        conn_id: this connection's id, unique within the server (for the registry and logs).
        now: the time the connection opened, in seconds on the caller's clock.
        header_credentials: ``(key, secret)`` from the ``APCA-API-KEY-ID`` /
            ``APCA-API-SECRET-KEY`` handshake headers, if both were sent.
    """

    def __init__(
        self,
        rules: Rules,
        registry: KeyRegistry,
        *,
        conn_id: int,
        now: float,
        header_credentials: tuple[str, str] | None = None,
    ) -> None:
        self.rules = rules
        self.registry = registry
        self.conn_id = conn_id
        self.opened_at = now
        self.state = SessionState.CONNECTED
        self.key: str | None = None
        """The key id this session authenticated with (it holds a registry slot)."""
        self._header_credentials = header_credentials
        self._subs: dict[str, dict[str, None]] = {c: {} for c in CHANNELS}
        self._targets = self._compute_targets()

    # -- public API ---------------------------------------------------------------------------

    @property
    def deadline(self) -> float | None:
        """When :meth:`poll` must be called to time the session out, or None once authenticated."""
        if self.state is SessionState.CONNECTED:
            return self.opened_at + self.rules.auth_timeout
        return None

    @property
    def targets(self) -> Targets:
        """The current subscription set, expanded for the data source."""
        return self._targets

    def subscriptions(self) -> dict[str, list[str]]:
        """The current set per channel, as the ``subscription`` message lists it."""
        return {c: list(self._subs[c]) for c in CHANNELS}

    def start(self) -> list[Action]:
        """The welcome, and the outcome of header authentication if the client used it."""
        actions: list[Action] = [Send(Success("connected")), Log("connected")]
        if self._header_credentials is not None:
            key, secret = self._header_credentials
            actions += self._authenticate(key, secret, how="header")
        return actions

    def receive(self, message: ClientMessage | Malformed, now: float) -> list[Action]:
        """Apply one decoded client message (or a :class:`Malformed`) received at ``now``."""
        if self.state is SessionState.CLOSED:
            return []
        timed_out = self.poll(now)
        if timed_out:
            return timed_out
        if isinstance(message, AuthRequest):
            return self._auth(message)
        if isinstance(message, SubscribeRequest):
            return self._subscribe(message)
        return self._error(ErrorCode.INVALID_SYNTAX, message.reason)

    def poll(self, now: float) -> list[Action]:
        """Time the session out if it is still unauthenticated at ``now`` past its deadline."""
        deadline = self.deadline
        if deadline is None or now < deadline:
            return []
        self.state = SessionState.CLOSED
        return [
            Send(error_message(ErrorCode.AUTH_TIMEOUT)),
            Log("auth timeout"),
            Close("auth timeout"),
        ]

    def close(self) -> list[Action]:
        """The connection is gone: free the key's slot. Safe to call more than once."""
        if self.key is not None:
            self.registry.release(self.key, self.conn_id)
            self.key = None
        self.state = SessionState.CLOSED
        return []

    # -- rules --------------------------------------------------------------------------------

    def _error(self, code: ErrorCode, why: str) -> list[Action]:
        return [Send(error_message(code)), Log(f"error {int(code)} {ERRORS[code].msg}: {why}")]

    def _auth(self, message: AuthRequest) -> list[Action]:
        if self.state is SessionState.AUTHENTICATED:
            return self._error(ErrorCode.ALREADY_AUTHENTICATED, "second auth")
        return self._authenticate(message.key, message.secret, how="message")

    def _authenticate(self, key: str, secret: str, *, how: str) -> list[Action]:
        if not self.rules.credentials_ok(key, secret):
            return self._error(ErrorCode.AUTH_FAILED, f"{how} auth with key {redact_key(key)}")
        if not self.registry.acquire(key, self.conn_id):
            self.state = SessionState.CLOSED
            return [
                *self._error(
                    ErrorCode.CONNECTION_LIMIT_EXCEEDED,
                    f"key {redact_key(key)} holds {self.registry.held(key)} connection(s)",
                ),
                Close("connection limit exceeded"),
            ]
        self.key = key
        self.state = SessionState.AUTHENTICATED
        return [Send(Success("authenticated")), Log(f"authenticated ({how}) key {redact_key(key)}")]

    def _subscribe(self, message: SubscribeRequest) -> list[Action]:
        add = not message.unsubscribe
        verb = message.action
        if self.state is not SessionState.AUTHENTICATED:
            return self._error(ErrorCode.NOT_AUTHENTICATED, f"{verb} before auth")
        # An empty list asks for nothing, whatever the key: only a real request on a channel
        # this feed lacks is refused (the Go SDK names statuses, lulds, news ... every time).
        request = {name: symbols for name, symbols in message.channels.items() if symbols}
        for name, symbols in request.items():
            if name not in CHANNELS:
                return self._error(ErrorCode.INVALID_SUBSCRIBE_ACTION, f"no channel {name[:32]!r}")
            if not all(is_valid_symbol(s) for s in symbols):
                return self._error(ErrorCode.INVALID_SYNTAX, f"badly formed symbol in {name}")
        new_subs = {c: dict(self._subs[c]) for c in CHANNELS}
        for channel, symbols in request.items():
            current = new_subs[channel]
            for symbol in symbols:
                if add:
                    current[symbol] = None
                else:
                    current.pop(symbol, None)
        if add and self.rules.symbol_limit is not None:
            for channel in CHANNELS:
                count = len(self._expand(new_subs[channel]))
                if count > self.rules.symbol_limit:
                    return self._error(
                        ErrorCode.SYMBOL_LIMIT_EXCEEDED,
                        f"{channel} would hold {count} > {self.rules.symbol_limit} symbols",
                    )
        before = self._targets
        self._subs = new_subs
        self._targets = self._compute_targets()
        old_books = before.symbols("orderbooks")
        new_books = self._targets.symbols("orderbooks")
        sets = {c: tuple(symbols) for c, symbols in self._subs.items()}
        reply = Subscription(
            sets["trades"],
            sets["quotes"],
            sets["orderbooks"],
            sets["bars"],
            sets["updatedBars"],
            sets["dailyBars"],
        )
        summary = " ".join(f"{c}={len(s)}" for c, s in self._subs.items() if s)
        return [
            Send(reply),
            Log(f"{verb} -> {summary or 'nothing'}"),
            Subscribed(
                targets=self._targets,
                new_books=tuple(s for s in new_books if s not in set(old_books)),
                gone_books=tuple(s for s in old_books if s not in set(new_books)),
            ),
        ]

    # -- helpers ------------------------------------------------------------------------------

    def _expand(self, symbols: Iterable[str]) -> tuple[str, ...]:
        named = list(symbols)
        if WILDCARD not in named:
            return tuple(named)
        everything = list(self.rules.universe)
        known = set(everything)
        return tuple(everything + [s for s in named if s != WILDCARD and s not in known])

    def _compute_targets(self) -> Targets:
        return Targets({c: self._expand(self._subs[c]) for c in CHANNELS})
