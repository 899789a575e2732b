"""The session policy of a supervised stream (``run``), as a pure, clock-free object.

``run`` does not own the Alpaca WebSocket: the platform's WebSocketManager (WSM) does. It
reconnects a dropped socket on its own and never resends the handshake, it forgets a connection
record that nobody sends through for a while, and a connection whose reconnects ran out stays
``DISCONNECTED`` for good (spec ``virtufin-platform.md``, "Newer platform behaviour").
:class:`Supervisor` decides what to do about all of it; the I/O layer (``live/loop.py``) only
moves bytes and arms one timer, as ``websockets``' connection modules do around ``Protocol``.

Inputs, each with ``now`` (monotonic seconds, any origin) and each returning the actions to
execute, in order:

* :meth:`~Supervisor.start` once, when the stream phase begins (the first handshake went out
  before, through ``run``'s auth and subscribe steps);
* :meth:`~Supervisor.receive` with every decoded frame of our connection;
* :meth:`~Supervisor.lifecycle` with every event of the WSM's lifecycle topic;
* :meth:`~Supervisor.tick` whenever :meth:`~Supervisor.next_deadline` has passed (calling it
  more often is harmless);
* :meth:`~Supervisor.sent` or :meth:`~Supervisor.send_failed` right after executing a
  :class:`Handshake` or :class:`Keepalive`; for a :class:`Handshake`, build the payloads with
  :meth:`~Supervisor.handshake` first;
* :meth:`~Supervisor.connection_opened` or :meth:`~Supervisor.open_failed` right after
  executing an :class:`OpenConnection`.

The rules:

* **Re-handshake** when a new socket shows: a ``connected`` welcome (or a 401) on the topic
  (:class:`~alpaca_cli.alpaca.session.ClientSession` says so), or, as a fallback
  :data:`LIFECYCLE_FALLBACK` seconds later when no welcome came, a lifecycle ``connected`` that
  follows a ``reconnecting`` (or ``disconnected``/``error``) of our connection or carries an
  ``attempt``. A welcome and the lifecycle event of the same reconnect race; either order gives
  one handshake. Books are stale from the reconnect to their next reset.
* **406** (the key's slot is still held, ~90 s for a dead socket): the next handshake waits a
  jittered, growing delay from :func:`rehandshake_backoff`; once its 150 s are used up the run
  fails (:class:`Fail`), as it does at once on 402/409.
* **Stall**: no data for ``stall_limit`` seconds is reported once, until data comes back.
* **Keepalive**: every ``keepalive`` seconds after the last successful send, while the stream
  is up, the confirmed subscription is sent again. The WSM refreshes its connection record only
  on a successful send; Alpaca answers with the same set, and that answer is neither a
  re-handshake, nor an error, nor data.
* **Terminal disconnect**: a ``disconnected`` (or an ``error`` that ends a run of
  ``reconnecting``) with no sign of life within :data:`TERMINAL_GRACE` seconds means the WSM
  gave up: :class:`OpenConnection` asks the I/O layer for a new connection, which is then
  handshaken like a reconnect.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, TypeAlias

import orjson

from .messages import Bar, Message, OrderBookUpdate, Quote, Trade
from .session import (
    AlpacaFailure,
    ClientSession,
    DataResumed,
    Event,
    RehandshakeNeeded,
    SubscriptionConfirmed,
    backoff_delays,
)

__all__ = [
    "KEEPALIVE",
    "LIFECYCLE_FALLBACK",
    "TERMINAL_GRACE",
    "Action",
    "BooksStale",
    "ConnectionStatus",
    "Expect",
    "Fail",
    "Handshake",
    "Keepalive",
    "LifecycleEvent",
    "LifecycleKind",
    "NoteError",
    "OpenConnection",
    "Phase",
    "Reconnected",
    "Stalled",
    "Supervisor",
    "Warn",
    "lifecycle_connection_id",
    "lifecycle_kind",
    "rehandshake_backoff",
]

logger = logging.getLogger(__name__)

LIFECYCLE_FALLBACK = 2.0
"""Seconds a lifecycle ``connected`` waits for the welcome before it re-handshakes itself; also
how long after a welcome-triggered re-handshake a lifecycle ``connected`` counts as the same
reconnect (a second auth would get Alpaca's 403)."""
TERMINAL_GRACE = 5.0
"""Seconds after a ``disconnected`` without a ``reconnecting``, ``connected`` or any frame
before the connection counts as gone for good."""
SEND_RETRY = 1.0
"""Seconds before a failed re-handshake is sent again."""
SEND_RETRIES = 5
"""Failed re-handshakes in a row retried before the policy stops trying (a new socket, a 401
or a lifecycle ``connected`` asks again)."""
KEEPALIVE = 60.0
"""Default keepalive interval: well inside the WSM's 300 s connection-record TTL."""
KEEPALIVE_RETRY = 5.0
"""Seconds (at most the keepalive interval) before a failed keepalive is sent again."""
REOPEN_RETRY = 5.0
"""Seconds before a failed attempt to open a new connection is made again."""
REOPEN_RETRIES = 5
"""Failed attempts in a row to open a new connection before the policy gives up."""
LIFECYCLE_PREFIX = "com.virtufin.websocketmanager."
"""Type prefix of the WSM's lifecycle CloudEvents."""


def rehandshake_backoff(rng: random.Random) -> Iterator[float]:
    """The 406 schedule of a supervised stream: :func:`backoff_delays` capped at 8 s.

    Short delays because each try is only one ``send_raw`` on a socket that is already open;
    150 s in total, which outlasts the ~90 s Alpaca holds a dead socket's slot.
    """
    return backoff_delays(rng, maximum=8.0)


# ---------------------------------------------------------------------------- lifecycle events


class LifecycleKind(StrEnum):
    """What a WSM lifecycle event says about a connection, whatever family named it."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    DEGRADED = "degraded"
    RECONNECTING = "reconnecting"
    DISCONNECTED = "disconnected"
    ERROR = "error"


_SUFFIXES: dict[str, LifecycleKind] = {
    # classic (``com.virtufin.websocketmanager.lifecycle.<kind>``) and the WSM spec's
    # ``connection.<kind>``
    "connecting": LifecycleKind.CONNECTING,
    "connected": LifecycleKind.CONNECTED,
    "reconnecting": LifecycleKind.RECONNECTING,
    "disconnected": LifecycleKind.DISCONNECTED,
    "error": LifecycleKind.ERROR,
    # the C# Topics reference
    "registered": LifecycleKind.CONNECTING,
    "degraded": LifecycleKind.DEGRADED,
    "closed": LifecycleKind.DISCONNECTED,
    "failed": LifecycleKind.ERROR,
}
_LOST = frozenset({LifecycleKind.RECONNECTING, LifecycleKind.DISCONNECTED, LifecycleKind.ERROR})


def lifecycle_kind(event_type: str) -> LifecycleKind | None:
    """Classify a lifecycle CloudEvent ``type`` by its prefix and suffix; None if not one.

    Accepted: ``com.virtufin.websocketmanager.`` followed by ``lifecycle.``, ``connection.``,
    both or neither, then one documented suffix (``connecting``, ``connected``,
    ``reconnecting``, ``disconnected``, ``error``; ``registered``, ``degraded``, ``closed`` ->
    disconnected, ``failed`` -> error), in any case. The same without the prefix is accepted
    too (a relative name such as ``connection.connected``). Other ``com.virtufin.`` families
    (the WorkManager's ``worker.*``) and unknown suffixes give None.
    """
    name = event_type.strip().lower()
    if name.startswith("com.virtufin."):
        if not name.startswith(LIFECYCLE_PREFIX):
            return None
        name = name[len(LIFECYCLE_PREFIX) :]
    for part in ("lifecycle.", "connection."):
        if name.startswith(part):
            name = name[len(part) :]
    return _SUFFIXES.get(name)


def lifecycle_connection_id(data: Mapping[str, Any]) -> str | None:
    """The connection a lifecycle event's data is about: ``connection_id``, ``connectionId``
    or ``id``, the first that holds a non-empty string (or an integer); else None."""
    for key in ("connection_id", "connectionId", "id"):
        value = data.get(key)
        if isinstance(value, str) and value:
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
    return None


def _attempt(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        number = int(value)
        return number if number > 0 else None
    return None


@dataclass(frozen=True, slots=True)
class LifecycleEvent:
    """One lifecycle CloudEvent, read leniently (see :meth:`parse`)."""

    type: str
    kind: LifecycleKind | None
    """None for a type :func:`lifecycle_kind` does not know."""
    connection_id: str | None
    attempt: int | None
    """The WSM's reconnect attempt (1, 2, ...) on the ``connected`` that ends a reconnect."""

    @classmethod
    def parse(cls, event_type: str, data: bytes) -> LifecycleEvent | None:
        """Read an event's ``type`` and JSON ``data``; None when the data is no JSON object."""
        try:
            doc: Any = orjson.loads(data)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(doc, dict):
            return None
        return cls(
            event_type,
            lifecycle_kind(event_type),
            lifecycle_connection_id(doc),
            _attempt(doc.get("attempt")),
        )


# ---------------------------------------------------------------------------- phases and actions


class Phase(StrEnum):
    """What the supervised stream is doing; the value is what the views show."""

    STARTING = "starting"
    """Before :meth:`Supervisor.start`."""
    STREAMING = "streaming"
    REHANDSHAKE = "re-handshake"
    """A new socket was seen; auth and the subscriptions are (being) sent again."""
    BACKOFF = "406 backoff"
    """Alpaca answered 406; the next handshake waits."""
    STALLED = "stalled"
    """No data for longer than the stall limit."""
    RECONNECTING = "reconnecting"
    DISCONNECTED = "disconnected"
    ERROR = "error"
    """The lifecycle topic reported the socket lost (reconnecting, disconnected, error)."""
    NEW_CONNECTION = "new connection"
    """The connection is gone for good; a new one is being opened."""
    FAILED = "failed"
    """A :class:`Fail` was returned: the run cannot go on."""


@dataclass(frozen=True, slots=True)
class Handshake:
    """Send auth and the subscriptions on the current connection.

    Call :meth:`Supervisor.handshake` with the credentials for the payloads, send them in
    order, then call :meth:`Supervisor.sent` (all went out) or :meth:`Supervisor.send_failed`.
    """


@dataclass(frozen=True, slots=True)
class Keepalive:
    """Send these payloads (the confirmed subscription), then :meth:`Supervisor.sent` or
    :meth:`Supervisor.send_failed`. They hold no secret."""

    payloads: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Reconnected:
    """A new socket: count a reconnect; every book is stale until its next reset."""

    count: int
    """Reconnects so far, this one included."""


@dataclass(frozen=True, slots=True)
class BooksStale:
    """The socket is down (lifecycle ``kind``): every book is stale until its next reset."""

    kind: LifecycleKind


@dataclass(frozen=True, slots=True)
class Expect:
    """The server confirmed a subscription with these symbols: they should get data."""

    symbols: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Stalled:
    """No data for ``silent`` seconds, more than ``limit``: report it once (error and warning)."""

    silent: float
    limit: float

    def __str__(self) -> str:
        return f"no data for {self.silent:.0f} s (stall limit {self.limit:g} s)"


@dataclass(frozen=True, slots=True)
class Warn:
    """One line for the operator."""

    text: str


@dataclass(frozen=True, slots=True)
class NoteError:
    """Count an error and keep its description (never fatal)."""

    text: str


@dataclass(frozen=True, slots=True)
class ConnectionStatus:
    """The connection's status as the lifecycle topic reports it (``CONNECTED``...)."""

    status: str


@dataclass(frozen=True, slots=True)
class OpenConnection:
    """``connection_id`` is gone for good (its reconnects ran out): open a new connection to
    the same stream, publishing to the same topic, and record it in place of the old one.

    Then call :meth:`Supervisor.connection_opened` with the new id (the policy handshakes it
    and ignores the old one from then on) or :meth:`Supervisor.open_failed`. Frames of the new
    connection must reach :meth:`Supervisor.receive` from the moment it exists.
    """

    connection_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class Fail:
    """Alpaca refused for good: end the run with this error (exit 4 in the CLI)."""

    code: int
    message: str
    hint: str


Action: TypeAlias = (
    Handshake
    | Keepalive
    | Reconnected
    | BooksStale
    | Expect
    | Stalled
    | Warn
    | NoteError
    | ConnectionStatus
    | OpenConnection
    | Fail
)

_DATA = (Trade, Quote, Bar, OrderBookUpdate)
_KEEPALIVE_PHASES = frozenset({Phase.STREAMING, Phase.STALLED, Phase.REHANDSHAKE})


def _same_set(a: Mapping[str, Sequence[str]], b: Mapping[str, Sequence[str]]) -> bool:
    left = {k: frozenset(v) for k, v in a.items() if v}
    right = {k: frozenset(v) for k, v in b.items() if v}
    return left == right


# ---------------------------------------------------------------------------- the policy


class Supervisor:
    """Decides, from what the topic and the lifecycle topic show, what ``run`` must do.

    Example (the I/O side, simplified)::

        policy = Supervisor(ClientSession(confirmed), connection_id, stall_limit=30)
        execute(policy.start(monotonic()))
        while running:
            item = stream.next(timeout=until(policy.next_deadline()))
            if item is not None:
                execute(policy.receive(item.messages, monotonic()))
            execute(policy.tick(monotonic()))

    No clocks, sleeps or I/O: every input takes ``now``, and the jitter of the 406 backoff
    comes from the injected ``rng``. Inputs after a :class:`Fail` are ignored.

    Parameters:
        session: the Alpaca session as seen on the topic.
        connection_id: our connection; lifecycle events of others are ignored.
        stall_limit: seconds of silence reported as a stall (0 turns it off).
        keepalive: seconds between keepalives (0 turns them off; :data:`KEEPALIVE` is the
            documented default).
        reopen: whether the I/O side can execute :class:`OpenConnection`; without it a
            terminal disconnect is only reported.
        rng: source of the backoff's jitter (seed it for repeatable delays).
        backoff: the 406 schedule, a function of ``rng`` giving finite delays.
    """

    def __init__(
        self,
        session: ClientSession,
        connection_id: str,
        *,
        stall_limit: float = 0.0,
        keepalive: float = 0.0,
        reopen: bool = False,
        rng: random.Random | None = None,
        backoff: Callable[[random.Random], Iterator[float]] = rehandshake_backoff,
    ) -> None:
        if stall_limit < 0 or keepalive < 0:
            raise ValueError("stall_limit and keepalive must be >= 0 (0 turns them off)")
        self.session = session
        self.connection_id = connection_id
        """The connection whose frames and events count (it changes on a new connection)."""
        self.stall_limit = stall_limit
        self.keepalive = keepalive
        self.reopen = reopen
        self._rng = rng or random.Random()
        self._backoff_of = backoff
        self.reconnects = 0
        """:class:`Reconnected` actions so far (new connections included)."""
        self.connections_opened = 0
        """New connections opened in place of one that was gone for good."""
        self.keepalives_sent = 0
        self.keepalive_answers = 0
        """``subscription`` answers recognised as answers to a keepalive (and ignored)."""
        self._phase = Phase.STARTING
        self._started = False
        self._backoff: Iterator[float] | None = None
        self._backoff_until = 0.0
        self._handshake_at: float | None = None
        self._send_failures = 0
        self._sending: Literal["handshake", "keepalive"] | None = None
        self._fallback_at: float | None = None
        self._welcome_reconnect_at: float | None = None
        """When the last re-handshake triggered by the topic (welcome or 401) happened: the
        WSM's ``connected`` event for that same reconnect may arrive after the welcome, and
        must not arm the fallback (that would send a second auth: Alpaca's 403). A re-handshake
        the fallback itself triggered does not count: the next ``connected`` is a new socket."""
        self._last_kind: LifecycleKind | None = None
        self._terminal_at: float | None = None
        self._terminal_reported = False
        self._opening = False
        self._reopen_at: float | None = None
        self._reopen_failures = 0
        self._stalled = False
        self._quiet_since = 0.0
        self._last_sent = 0.0
        self._keepalive_not_before = 0.0
        self._keepalive_unanswered = 0

    @property
    def phase(self) -> Phase:
        """What the stream is doing now; every transition is logged at DEBUG."""
        return self._phase

    def _set_phase(self, phase: Phase) -> None:
        if phase is not self._phase:
            logger.debug("supervisor: %s -> %s", self._phase.name, phase.name)
            self._phase = phase

    def __repr__(self) -> str:
        return f"<Supervisor {self._phase.name} {self.connection_id} reconnects={self.reconnects}>"

    # ------------------------------------------------------------------------- inputs

    def start(self, now: float) -> list[Action]:
        """The stream phase begins; the first handshake already went out some other way.

        Call it once, before any other input: it arms re-handshake detection (any welcome
        from now on is a new socket) and starts the stall and keepalive clocks.
        """
        if self._started:
            raise RuntimeError("Supervisor.start() was already called")
        self._started = True
        self.session.mark_handshake_sent()
        self._quiet_since = now
        self._last_sent = now
        self._set_phase(Phase.STREAMING)
        return []

    def receive(self, messages: Sequence[Message], now: float) -> list[Action]:
        """Actions caused by one decoded frame of our connection, received at ``now``.

        Cheap for data frames: they cause no action except after a stall or a reconnect.
        """
        if self._phase is Phase.FAILED:
            return []
        actions: list[Action] = []
        # Any frame of our connection shows it is alive: it was not gone for good.
        self._terminal_at = None
        session = self.session
        data = False
        for msg in messages:
            if msg.__class__ in _DATA:
                if not data:
                    data = True
                    self._quiet_since = now
                    if self._stalled:
                        self._stalled = False
                        self._set_phase(Phase.STREAMING)
                for event in session.receive(msg):
                    self._event(event, now, actions)
                continue
            # What a keepalive sent: the answer to it is the same set.
            before = session.subscriptions() if self._keepalive_unanswered else None
            for event in session.receive(msg):
                if (
                    isinstance(event, SubscriptionConfirmed)
                    and before is not None
                    and self._keepalive_unanswered > 0
                    and _same_set(before, event.channels)
                ):
                    self._keepalive_unanswered -= 1
                    self.keepalive_answers += 1
                    continue
                self._event(event, now, actions)
            if self.phase is Phase.FAILED:  # the property: not narrowed above
                break
        return actions

    def lifecycle(
        self,
        event_type: str,
        connection_id: str | None,
        now: float,
        *,
        attempt: int | None = None,
    ) -> list[Action]:
        """Actions caused by one event of the WSM's lifecycle topic (see :class:`LifecycleEvent`).

        Events of other connections and of unknown types cause none.
        """
        if self._phase is Phase.FAILED or connection_id != self.connection_id:
            return []
        kind = lifecycle_kind(event_type)
        if kind is None:
            return []
        previous, self._last_kind = self._last_kind, kind
        actions: list[Action] = [ConnectionStatus(kind.name)]
        if kind in _LOST:
            actions.append(BooksStale(kind))
            self._set_phase(Phase(kind.value))
            if kind is LifecycleKind.RECONNECTING:
                self._terminal_at = None
            elif not self._opening and (
                kind is LifecycleKind.DISCONNECTED or previous is LifecycleKind.RECONNECTING
            ):
                self._terminal_at = now + TERMINAL_GRACE
        elif kind is LifecycleKind.CONNECTED:
            self._terminal_at = None
            if attempt or previous in _LOST:
                handled = self._welcome_reconnect_at
                if handled is None or now - handled > LIFECYCLE_FALLBACK:
                    self._fallback_at = now + LIFECYCLE_FALLBACK
        elif kind is LifecycleKind.CONNECTING:
            self._terminal_at = None
        return actions

    def tick(self, now: float) -> list[Action]:
        """Actions whose time has come at ``now``: a new connection, a fallback re-handshake,
        a (delayed) handshake, a stall report, a keepalive.

        Call it whenever :meth:`next_deadline` has passed; afterwards, once any send it asked
        for was reported, nothing is due at ``now`` any more.
        """
        if self._phase is Phase.FAILED or not self._started:
            return []
        actions: list[Action] = []
        # A connection gone for good first: nothing else is worth sending on it.
        if self._terminal_at is not None and now >= self._terminal_at:
            self._terminal_at = None
            self._gone(now, actions)
        if self._reopen_at is not None and now >= self._reopen_at and not self._opening:
            self._open(actions)
        if self._fallback_at is not None and now >= self._fallback_at:
            self._fallback_at = None
            for event in self.session.connection_reset():
                self._event(event, now, actions, fallback=True)
        if (
            self._handshake_at is not None
            and now >= self._handshake_at
            and self._sending is None
            and not self._opening
        ):
            self._handshake_at = None
            self._sending = "handshake"
            actions.append(Handshake())
        stall = self._stall_deadline()
        if stall is not None and now >= stall:
            self._stalled = True
            self._set_phase(Phase.STALLED)
            actions.append(Stalled(now - self._quiet_since, self.stall_limit))
        due = self._keepalive_deadline()
        if due is not None and now >= due:
            self._sending = "keepalive"
            self._keepalive_unanswered += 1
            actions.append(Keepalive(tuple(self.session.subscribe_messages())))
        return actions

    @property
    def terminal_deadline(self) -> float | None:
        """When a ``disconnected``/``error`` with no sign of life since counts as the
        connection being gone for good (``None``: no such check pending). Any frame of ours
        ends the check."""
        return self._terminal_at

    def next_deadline(self) -> float | None:
        """When :meth:`tick` has something to do next (a ``now`` value), or None.

        The I/O side wakes at the latest then; a deadline in the past means "tick now".
        """
        if self._phase is Phase.FAILED or not self._started:
            return None
        times = [
            t
            for t in (
                self._fallback_at,
                None if self._sending or self._opening else self._handshake_at,
                self._stall_deadline(),
                self._keepalive_deadline(),
                self._terminal_at,
                self._reopen_at,
            )
            if t is not None
        ]
        return min(times) if times else None

    # ------------------------------------------------------------------------- sending

    def handshake(self, key: str, secret: str) -> list[bytes]:
        """The payloads of the :class:`Handshake` just returned: auth, then subscribe.

        They hold the secret: send them, never log them. The secret is not kept here.

        Raises:
            RuntimeError: no :class:`Handshake` is waiting to be sent.
        """
        if self._sending != "handshake":
            raise RuntimeError("Supervisor.handshake() without a Handshake action to execute")
        return self.session.handshake(key, secret)

    def sent(self, now: float) -> list[Action]:
        """The :class:`Handshake` or :class:`Keepalive` just returned went out, all of it.

        Raises:
            RuntimeError: nothing was being sent.
        """
        sending = self._take_sending()
        self._last_sent = now
        self._keepalive_not_before = 0.0
        if sending == "handshake":
            self._send_failures = 0
        else:
            self.keepalives_sent += 1
        return []

    def send_failed(self, error: str, now: float) -> list[Action]:
        """The :class:`Handshake` or :class:`Keepalive` just returned could not be sent.

        A handshake is tried again :data:`SEND_RETRY` seconds later, up to
        :data:`SEND_RETRIES` times in a row; a keepalive at its next time.

        Raises:
            RuntimeError: nothing was being sent.
        """
        sending = self._take_sending()
        if sending == "keepalive":
            self._keepalive_unanswered = max(0, self._keepalive_unanswered - 1)
            self._keepalive_not_before = now + min(self.keepalive, KEEPALIVE_RETRY)
            return [NoteError(f"keepalive failed: {error}")]
        self._send_failures += 1
        if self._send_failures <= SEND_RETRIES:
            self._handshake_at = now + SEND_RETRY
        return [NoteError(f"re-handshake failed: {error}")]

    def _take_sending(self) -> Literal["handshake", "keepalive"]:
        sending = self._sending
        if sending is None:
            raise RuntimeError("no Handshake or Keepalive action is being executed")
        self._sending = None
        return sending

    # ------------------------------------------------------------------------- new connections

    def connection_opened(self, connection_id: str, now: float) -> list[Action]:
        """The :class:`OpenConnection` just returned succeeded: ``connection_id`` replaces the
        old connection. Counts a reconnect and handshakes the new socket (its own welcome is
        not taken for yet another socket).

        Raises:
            RuntimeError: no :class:`OpenConnection` was being executed.
        """
        if not self._opening:
            raise RuntimeError("Supervisor.connection_opened() without an OpenConnection")
        self._opening = False
        old, self.connection_id = self.connection_id, connection_id
        self.connections_opened += 1
        self._reopen_failures = 0
        self._last_kind = None
        self._terminal_reported = False
        self.session.expect_greeting()
        actions: list[Action] = []
        self._reconnected(now, actions)
        actions.append(
            Warn(
                f"connection {old} was closed for good; opened {connection_id} in its place "
                f"(reconnect {self.reconnects}): sending auth and the subscriptions"
            )
        )
        return actions

    def open_failed(self, error: str, now: float) -> list[Action]:
        """The :class:`OpenConnection` just returned failed: tried again :data:`REOPEN_RETRY`
        seconds later, up to :data:`REOPEN_RETRIES` times in a row.

        Raises:
            RuntimeError: no :class:`OpenConnection` was being executed.
        """
        if not self._opening:
            raise RuntimeError("Supervisor.open_failed() without an OpenConnection")
        self._opening = False
        self._reopen_failures += 1
        actions: list[Action] = [NoteError(f"opening a new connection failed: {error}")]
        if self._reopen_failures <= REOPEN_RETRIES:
            self._reopen_at = now + REOPEN_RETRY
        else:
            self._set_phase(Phase.DISCONNECTED)
            actions.append(
                Warn(
                    f"gave up opening a new connection after {self._reopen_failures} failures; "
                    "the stream stays down"
                )
            )
        return actions

    def _gone(self, now: float, actions: list[Action]) -> None:
        if self.reopen:
            self._open(actions)
        elif not self._terminal_reported:
            self._terminal_reported = True
            actions.append(
                Warn(
                    f"connection {self.connection_id} is disconnected for good (its reconnects "
                    "ran out); this run cannot open a new one"
                )
            )

    def _open(self, actions: list[Action]) -> None:
        self._opening = True
        self._terminal_at = None
        self._reopen_at = None
        self._handshake_at = None
        self._fallback_at = None
        self._set_phase(Phase.NEW_CONNECTION)
        actions.append(OpenConnection(self.connection_id, "its reconnects ran out"))

    # ------------------------------------------------------------------------- session events

    def _event(
        self, event: Event, now: float, actions: list[Action], *, fallback: bool = False
    ) -> None:
        if isinstance(event, RehandshakeNeeded):
            if not fallback:
                self._welcome_reconnect_at = now
            self._reconnected(now, actions)
            actions.append(
                Warn(
                    "the upstream connection was re-established "
                    f"(reconnect {self.reconnects}): sending auth and the subscriptions again"
                )
            )
        elif isinstance(event, AlpacaFailure):
            self._failure(event, now, actions)
        elif isinstance(event, SubscriptionConfirmed):
            symbols = tuple(s for channel in event.channels.values() for s in channel)
            if symbols:
                actions.append(Expect(symbols))
            self._backoff = None
            self._backoff_until = 0.0
            if self._phase is not Phase.STALLED:
                self._set_phase(Phase.STREAMING)
        elif isinstance(event, DataResumed):
            self._set_phase(Phase.STREAMING)

    def _reconnected(self, now: float, actions: list[Action]) -> None:
        self._fallback_at = None
        self._keepalive_unanswered = 0  # a new socket never got them
        self.reconnects += 1
        actions.append(Reconnected(self.reconnects))
        self._set_phase(Phase.REHANDSHAKE)
        self._handshake_at = max(now, self._backoff_until)

    def _failure(self, failure: AlpacaFailure, now: float, actions: list[Action]) -> None:
        if failure.fatal:
            self._set_phase(Phase.FAILED)
            actions.append(
                Fail(
                    failure.code,
                    f"Alpaca refused the re-handshake: {failure.code} {failure.msg}.",
                    "Check ALPACA_API_KEY / ALPACA_API_SECRET and the account's plan.",
                )
            )
            return
        if failure.code != 406:
            return
        if self._backoff is None:
            self._backoff = self._backoff_of(self._rng)
        delay = next(self._backoff, None)
        if delay is None:
            self._set_phase(Phase.FAILED)
            actions.append(
                Fail(
                    406,
                    "Alpaca kept answering 406 connection limit exceeded for longer than "
                    "its ~90 s slot release.",
                    "Another client uses these keys: stop it, or wait and run again.",
                )
            )
            return
        self._backoff_until = now + delay
        self._handshake_at = self._backoff_until
        self._set_phase(Phase.BACKOFF)
        actions.append(Warn(f"Alpaca 406 connection limit exceeded: trying again in {delay:.1f} s"))

    # ------------------------------------------------------------------------- deadlines

    def _stall_deadline(self) -> float | None:
        if self.stall_limit <= 0 or self._stalled:
            return None
        return self._quiet_since + self.stall_limit

    def _keepalive_deadline(self) -> float | None:
        if (
            self.keepalive <= 0
            or self._sending is not None
            or self._handshake_at is not None
            or self._opening
            or self._phase not in _KEEPALIVE_PHASES
        ):
            return None
        return max(self._last_sent + self.keepalive, self._keepalive_not_before)
