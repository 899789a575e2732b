"""The client side of an Alpaca stream session, as a pure state machine (spec: "Session").

``run`` does not own the WebSocket: the platform's WebSocketManager does, reconnects it on its
own and never resends the handshake, so the stream would go silent after a drop. What ``run``
does see is every frame on the topic. :class:`ClientSession` reads those messages and says what
happened (:class:`Welcome`, :class:`Authenticated`, :class:`SubscriptionConfirmed`,
:class:`AlpacaFailure`, :class:`RehandshakeNeeded`, :class:`DataResumed`); the caller decides
what to send and when. No clocks and no I/O: the 406 wait is the pure :func:`backoff_delays`.

States::

    CONNECTING --welcome--> CONNECTED --authenticated--> AUTHENTICATED --subscription--> SUBSCRIBED
        any --welcome after a handshake was sent--> CONNECTED (+ RehandshakeNeeded)
            (except the one welcome announced by expect_greeting(): a socket we opened)
        any --402/406/409 or 404/407--> FAILED

A welcome that follows a handshake always means "handshake again". If the very first welcome
reaches the topic only after the first handshake was sent, that costs one extra handshake
(answered 403 ``already authenticated``, which is harmless; subscribing again is additive) and
one count in :attr:`ClientSession.reconnects`; missing a real reconnect would cost the stream.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import TypeAlias

from .codec import Format, encode_auth, encode_subscribe
from .errors import AUTH_REFUSALS, ErrorCode, ErrorInfo, Retry, error_info
from .messages import (
    Bar,
    Error,
    Message,
    OrderBookUpdate,
    Quote,
    Subscription,
    Success,
    Trade,
)

__all__ = [
    "AlpacaFailure",
    "Authenticated",
    "ClientSession",
    "DataResumed",
    "Event",
    "RehandshakeNeeded",
    "SessionState",
    "SubscriptionConfirmed",
    "Welcome",
    "backoff_delays",
]

logger = logging.getLogger(__name__)

Channels: TypeAlias = dict[str, tuple[str, ...]]


class SessionState(IntEnum):
    """Where the session stands, as far as the messages on the topic tell."""

    CONNECTING = 0
    """Nothing seen yet (the first welcome may have gone by before publishing started)."""
    CONNECTED = 1
    """A ``connected`` welcome arrived; the server waits for ``auth``."""
    AUTHENTICATED = 2
    SUBSCRIBED = 3
    """A ``subscription`` message confirmed the current set."""
    FAILED = 4
    """Refused (402/406/409) or dropped by the server (404/407): see the last AlpacaFailure."""


@dataclass(frozen=True, slots=True)
class Welcome:
    """``[{"T":"success","msg":"connected"}]``: a (re)connected socket."""

    reconnect: bool
    """True when a handshake had already been sent: this is a new socket."""


@dataclass(frozen=True, slots=True)
class Authenticated:
    """``[{"T":"success","msg":"authenticated"}]``."""


@dataclass(frozen=True, slots=True)
class SubscriptionConfirmed:
    """The server's whole current set, and what of the wanted set it lacks."""

    channels: Channels
    """Every channel (wire names), possibly empty."""
    missing: Channels
    """Wanted symbols not in the set, per channel with any (``*`` covers a whole channel)."""


@dataclass(frozen=True, slots=True)
class AlpacaFailure:
    """A ``T:"error"`` message with its meaning from the error table."""

    code: int
    msg: str
    info: ErrorInfo | None
    """The table row, or None for a code the spec does not list."""
    fatal: bool
    """True when this session cannot go on without the user (402 bad keys, 409 plan)."""

    @property
    def retry(self) -> Retry | None:
        """What the table says to do, or None for an unknown code."""
        return None if self.info is None else self.info.retry

    def __str__(self) -> str:
        return f"Alpaca error {self.code}: {self.msg}"


@dataclass(frozen=True, slots=True)
class RehandshakeNeeded:
    """The socket behind the topic is new (or forgot us): send :meth:`ClientSession.handshake`.

    For 406 wait a delay from :func:`backoff_delays` first.
    """

    reconnects: int
    """Reconnects seen so far, this one included."""


@dataclass(frozen=True, slots=True)
class DataResumed:
    """The first data message after a handshake: the stream really flows again."""


Event: TypeAlias = (
    Welcome
    | Authenticated
    | SubscriptionConfirmed
    | AlpacaFailure
    | RehandshakeNeeded
    | DataResumed
)

_DATA = (Trade, Quote, Bar, OrderBookUpdate)
_FATAL = frozenset({ErrorCode.AUTH_FAILED, ErrorCode.INSUFFICIENT_SUBSCRIPTION})
_DROPPED = frozenset({ErrorCode.AUTH_TIMEOUT, ErrorCode.SLOW_CLIENT})


def _normalize(channels: Mapping[str, Sequence[str]]) -> Channels:
    out: Channels = {}
    for channel, symbols in channels.items():
        if isinstance(symbols, str):
            raise TypeError(f"symbols of {channel!r} must be a sequence of str, not one str")
        if symbols:
            out[channel] = tuple(dict.fromkeys(symbols))
    return out


class ClientSession:
    """Follows one Alpaca session through the messages seen on the topic.

    Example::

        session = ClientSession({"orderbooks": ["BTC/USD", "ETH/USD"]})
        for payload in session.handshake(key, secret):
            send(payload)                       # e.g. a send_raw through the controller
        for msg in messages:
            for event in session.receive(msg):
                if isinstance(event, RehandshakeNeeded):
                    books.invalidate()
                    for payload in session.handshake(key, secret):
                        send(payload)

    The secret is never stored: :meth:`handshake` takes it each time.

    Parameters:
        wanted: channel (wire name, e.g. ``orderbooks``) -> symbols to subscribe to.
        fmt: encoding of the messages built (``msgpack`` when the socket negotiated it).
    """

    def __init__(self, wanted: Mapping[str, Sequence[str]], *, fmt: Format = "json") -> None:
        self.wanted: Channels = _normalize(wanted)
        self.fmt: Format = fmt
        self.confirmed: Channels | None = None
        """The last set the server confirmed, or None before any ``subscription`` message."""
        self.reconnects = 0
        self.errors = 0
        self.last_failure: AlpacaFailure | None = None
        self.last_control: Message | None = None
        """The last success/subscription/error message, for display."""
        self._state = SessionState.CONNECTING
        self._handshake_sent = False
        self._awaiting_data = False
        self._greeting_expected = False

    @property
    def state(self) -> SessionState:
        return self._state

    def _set_state(self, state: SessionState) -> None:
        if state is not self._state:
            logger.debug("alpaca session: %s -> %s", self._state.name, state.name)
            self._state = state

    def __repr__(self) -> str:
        return f"<ClientSession {self._state.name} reconnects={self.reconnects}>"

    # ----------------------------------------------------------------- outgoing

    def subscriptions(self) -> Channels:
        """The set to (re)subscribe to: the confirmed one once there is one, else the wanted one.

        After a 405 the server keeps its old set, so the confirmed set is the one known to work.
        """
        if self.confirmed is not None:
            confirmed = {k: v for k, v in self.confirmed.items() if v}
            if confirmed:
                return confirmed
        return dict(self.wanted)

    def subscribe_messages(self) -> list[bytes]:
        """``subscribe`` messages (at most 100 symbols each) for :meth:`subscriptions`."""
        return encode_subscribe(self.subscriptions(), fmt=self.fmt)

    def handshake(self, key: str, secret: str) -> list[bytes]:
        """``auth`` then ``subscribe`` messages to send, in order, on the current socket.

        Calling it arms re-handshake detection: a ``connected`` welcome seen afterwards means a
        new socket. The returned bytes hold the secret: send them, never log them.
        """
        self.mark_handshake_sent()
        return [encode_auth(key, secret, self.fmt), *self.subscribe_messages()]

    def mark_handshake_sent(self) -> None:
        """Record that a handshake went out some other way (e.g. ``run``'s auth and subscribe
        steps), arming re-handshake detection just as :meth:`handshake` does, without building
        messages that hold the secret only to throw them away."""
        self._handshake_sent = True
        self._awaiting_data = True

    def expect_greeting(self) -> None:
        """The socket behind the topic is one we just opened and will handshake ourselves.

        Its ``connected`` welcome is then its own greeting, not a sign of yet another socket:
        it gives ``Welcome(reconnect=False)`` and no :class:`RehandshakeNeeded`. Any other
        session message (an answer, an error, data) ends the expectation, so a welcome after
        that means a new socket again, as usual.
        """
        self._greeting_expected = True

    def connection_reset(self) -> list[Event]:
        """The platform reported a reconnect (lifecycle event) before any welcome showed it.

        Returns the same :class:`RehandshakeNeeded` a new welcome would. If both arrive the
        caller re-handshakes twice, which is harmless: a second auth gets 403, and subscribing
        is additive.
        """
        return self._reconnected() if self._handshake_sent else []

    # ----------------------------------------------------------------- incoming

    def receive(self, msg: Message) -> list[Event]:
        """Events that ``msg`` causes (most data messages cause none: cheap on the hot path)."""
        if msg.__class__ in _DATA:
            self._greeting_expected = False
            if self._awaiting_data:
                self._awaiting_data = False
                return [DataResumed()]
            return []
        if isinstance(msg, Success):
            self.last_control = msg
            if msg.msg == "connected":
                if self._greeting_expected:
                    self._greeting_expected = False
                    self._set_state(SessionState.CONNECTED)
                    return [Welcome(reconnect=False)]
                if self._handshake_sent:
                    return [Welcome(reconnect=True), *self._reconnected()]
                self._set_state(SessionState.CONNECTED)
                return [Welcome(reconnect=False)]
            if msg.msg == "authenticated":
                self._greeting_expected = False
                self._set_state(SessionState.AUTHENTICATED)
                return [Authenticated()]
            return []
        if isinstance(msg, Subscription):
            self._greeting_expected = False
            self.last_control = msg
            return [self._subscribed(msg)]
        if isinstance(msg, Error):
            self._greeting_expected = False
            self.last_control = msg
            return self._failed(msg)
        return []

    def receive_all(self, messages: Iterable[Message]) -> list[Event]:
        """:meth:`receive` over a decoded frame."""
        events: list[Event] = []
        for msg in messages:
            events.extend(self.receive(msg))
        return events

    def _reconnected(self) -> list[Event]:
        self.reconnects += 1
        self._awaiting_data = True
        self._set_state(SessionState.CONNECTED)
        return [RehandshakeNeeded(self.reconnects)]

    def _subscribed(self, msg: Subscription) -> SubscriptionConfirmed:
        current = msg.channels()
        self.confirmed = current
        missing: Channels = {}
        for channel, symbols in self.wanted.items():
            have = current.get(channel, ())
            if "*" in have:
                continue
            lacking = tuple(s for s in symbols if s not in have)
            if lacking:
                missing[channel] = lacking
        if self._state is not SessionState.FAILED:
            self._set_state(SessionState.SUBSCRIBED)
        return SubscriptionConfirmed(current, missing)

    def _failed(self, msg: Error) -> list[Event]:
        self.errors += 1
        info = error_info(msg.code)
        failure = AlpacaFailure(msg.code, msg.msg, info, fatal=msg.code in _FATAL)
        self.last_failure = failure
        events: list[Event] = [failure]
        if msg.code in AUTH_REFUSALS or msg.code in _DROPPED:
            self._set_state(SessionState.FAILED)
        elif (
            info is not None
            and info.retry is Retry.REAUTH
            and self._handshake_sent
            and self._state is not SessionState.FAILED
        ):
            # 401: the server forgot us, though we had authenticated: a silent reconnect.
            events.extend(self._reconnected())
        return events


def backoff_delays(
    rng: random.Random,
    *,
    first: float = 1.0,
    factor: float = 2.0,
    maximum: float = 30.0,
    jitter: float = 0.25,
    total: float = 150.0,
) -> Iterator[float]:
    """Seconds to wait before each retry (406): exponential, jittered, capped, finite.

    Delays start at ``first``, grow by ``factor`` up to ``maximum``, each scaled by a random
    factor in ``[1 - jitter, 1 + jitter]`` and kept within ``[first, maximum]``. The generator
    stops once the delays add up to ``total`` seconds. The default (150 s) outlasts the ~90 s
    for which Alpaca keeps a dead socket's connection slot. Pass a seeded ``random.Random``
    for repeatable delays.
    """
    if not (0 < first <= maximum and factor >= 1 and 0 <= jitter < 1 and total > 0):
        raise ValueError("need 0 < first <= maximum, factor >= 1, 0 <= jitter < 1, total > 0")
    base = first
    elapsed = 0.0
    while elapsed < total:
        delay = min(maximum, max(first, base * rng.uniform(1 - jitter, 1 + jitter)))
        elapsed += delay
        yield delay
        base = min(maximum, base * factor)
