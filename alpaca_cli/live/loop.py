"""The streaming phase of ``run``: consume the topic, keep the model current, heal the session.

Thin I/O glue around :class:`~alpaca_cli.alpaca.supervisor.Supervisor`, the pure policy that
decides when to re-handshake (the WebSocketManager reconnects a dropped Alpaca socket but never
resends the handshake), how long to back off on 406, when the stream stalled, when to send a
keepalive and when the connection is gone for good. This loop reads frames and lifecycle
events, feeds them to the policy with the time, executes the actions it returns (send through
the controller's ``send_raw``, count a reconnect, mark books stale, warn, fail) and wakes up at
the policy's :meth:`~alpaca_cli.alpaca.supervisor.Supervisor.next_deadline`.

Single-threaded on purpose: the loop wakes at least every :data:`POLL` seconds, redraws the view
at its own steady rate and never lets the view read the model while it changes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from alpaca_cli.alpaca.supervisor import (
    Action,
    BooksStale,
    ConnectionStatus,
    Expect,
    Fail,
    Handshake,
    Keepalive,
    LifecycleEvent,
    NoteError,
    OpenConnection,
    Reconnected,
    Stalled,
    Supervisor,
    Warn,
)
from alpaca_cli.errors import AlpacaAuthRefused, AlpacaMdError
from alpaca_cli.live.stats import RunInfo, StreamStats

if TYPE_CHECKING:
    from alpaca_cli.platform.pubsub import Subscription
    from alpaca_cli.stream import StreamItem, TopicStream

__all__ = ["BATCH", "LIFECYCLE_TOPIC", "POLL", "Display", "StreamLoop", "Upstream", "View"]

POLL = 0.1
"""Longest wait for a frame before the loop does its housekeeping (redraw, timers)."""
BATCH = 500
"""Frames processed back to back before housekeeping runs, when they keep coming."""
LIFECYCLE_TOPIC = "websocketmanager.lifecycle"
LIFECYCLE_DRAIN = 100
"""Lifecycle events handled per housekeeping round at most."""
STATUS_INTERVAL = 5.0
"""Seconds between refreshes of the worker and connection status in the header."""


class View(Protocol):
    def tick(self, now: float, *, force: bool = False) -> None: ...


def _no_warning(text: str) -> None:
    pass


@dataclass(frozen=True, slots=True)
class Upstream:
    """What the loop reads from and sends through.

    Parameters:
        stream: the topic consumer (opened before ``publish``, so nothing was missed).
        send: ``send(connection_id, payload)`` sends one payload upstream (controller
            ``send_raw``); may raise our errors.
        credentials: ``(key, secret)``, asked for at each re-handshake and never kept.
        lifecycle: the WSM's lifecycle topic, or ``None``.
        open_connection: ``open_connection(old_id) -> new_id`` opens a new connection that
            publishes to the same topic and records it in place of the old one (may raise our
            errors); ``None`` when the caller cannot, and the supervisor must know it
            (``Supervisor(reopen=...)``).
        refresh_status: updates the header's worker/connection status (every few seconds).
    """

    stream: TopicStream
    send: Callable[[str, bytes], object]
    credentials: Callable[[], tuple[str, str]]
    lifecycle: Subscription | None = None
    open_connection: Callable[[str], str] | None = None
    refresh_status: Callable[[], None] | None = None


@dataclass(frozen=True, slots=True)
class Display:
    """The model the loop keeps current and what shows it.

    Parameters:
        stats: the stream model (counts, books, errors, reconnects).
        info: the header; its ``phase`` mirrors the supervisor's.
        view: ticked after every round.
        warn: one line for the operator.
    """

    stats: StreamStats
    info: RunInfo
    view: View
    warn: Callable[[str], None] = _no_warning


class StreamLoop:
    """Runs until ``stop`` is set, the deadline passes, or the session fails for good.

    Parameters:
        supervisor: the session policy; the loop calls its ``start`` when it runs (the first
            handshake went out before the loop, through ``run``'s auth and subscribe steps).
        upstream: the stream, the lifecycle topic and how to send.
        display: the model, the header and the view.
        clock: monotonic seconds, passed to every input of the supervisor.
        stop: set by a signal or by the caller.
        deadline: ``clock()`` value at which to stop (``--duration``), or ``None``.
    """

    def __init__(
        self,
        supervisor: Supervisor,
        upstream: Upstream,
        display: Display,
        *,
        clock: Callable[[], float],
        stop: threading.Event,
        deadline: float | None = None,
    ) -> None:
        if supervisor.reopen and upstream.open_connection is None:
            raise ValueError("Supervisor(reopen=True) needs Upstream(open_connection=...)")
        self.supervisor = supervisor
        self.upstream = upstream
        self.stream = upstream.stream
        self.lifecycle = upstream.lifecycle
        self.stats = display.stats
        self.info = display.info
        self.view = display.view
        self._warn = display.warn
        self._clock = clock
        self.stop = stop
        self.deadline = deadline
        self._next_status = 0.0
        self.end_reason: str | None = None

    # -- the loop ---------------------------------------------------------------------------------

    def run(self) -> str:
        """Stream until told to stop; returns why it stopped.

        Raises:
            AlpacaAuthRefused: Alpaca refused a re-handshake for good (402/409, or 406 for longer
                than the backoff allows).
            SidecarUnreachable: the topic stream failed.
        """
        now = self._clock()
        self.stats.begin_streaming(now)
        try:
            return self._run(now)
        finally:
            self.stats.end_streaming(self._clock())

    def _run(self, now: float) -> str:
        self._next_status = now + STATUS_INTERVAL
        # The stream first replays what run's auth and subscribe steps consumed. Under load the
        # WSM can publish the new socket's own welcome too (it was still unread when publishing
        # started): before that socket's answers it is its greeting, not a reconnect.
        self.supervisor.session.expect_greeting()
        self._execute(self.supervisor.start(now), now)
        while True:
            now = self._clock()
            if self.stop.is_set():
                return self.end_reason or "stop requested"
            if self.deadline is not None and now >= self.deadline:
                return "duration reached"
            timeout = 0.0 if self.stream.pending() else POLL
            for wake in (self.supervisor.next_deadline(), self.deadline):
                if wake is not None:
                    timeout = max(0.0, min(timeout, wake - now))
            try:
                item = self.stream.next(timeout)
            except EOFError:
                return "the topic stream ended"
            handled = 0
            while item is not None:
                self._item(item)
                handled += 1
                if handled >= BATCH or not self.stream.pending():
                    break
                item = self.stream.next(0)
            self._housekeeping(self._clock())

    def _housekeeping(self, now: float) -> None:
        self._drain_lifecycle(now)
        self._execute(self.supervisor.tick(now), now)
        if self.upstream.refresh_status is not None and now >= self._next_status:
            self._next_status = now + STATUS_INTERVAL
            try:
                self.upstream.refresh_status()
            except AlpacaMdError as exc:
                self.info.worker_status = "unknown"
                self.stats.note_error(f"status refresh failed: {exc}")
        self.view.tick(now)

    def _item(self, item: StreamItem) -> None:
        ws = item.meta.websocket_id
        if ws is not None and ws != self.supervisor.connection_id:
            return
        now = self._clock()
        if item.error is not None:
            self.stats.note_decode_error(item.error)
            return
        self.stats.record(item.messages, now=now, received_ns=item.received_ns)
        self._execute(self.supervisor.receive(item.messages, now), now)

    def _drain_lifecycle(self, now: float) -> None:
        sub = self.lifecycle
        if sub is None:
            return
        for _ in range(LIFECYCLE_DRAIN):
            try:
                event = sub.get(timeout=0)
            except EOFError:
                self.lifecycle = None
                return
            except AlpacaMdError as exc:
                self.stats.note_error(f"lifecycle stream failed: {exc}")
                self.lifecycle = None
                return
            if event is None:
                return
            parsed = LifecycleEvent.parse(event.type, event.data)
            if parsed is not None:
                actions = self.supervisor.lifecycle(
                    parsed.type, parsed.connection_id, now, attempt=parsed.attempt
                )
                self._execute(actions, now)

    # -- actions ----------------------------------------------------------------------------------

    def _execute(self, actions: list[Action], now: float) -> None:
        for action in actions:
            if isinstance(action, Handshake):
                self._handshake(now)
            elif isinstance(action, Keepalive):
                self._keepalive(action, now)
            elif isinstance(action, Reconnected):
                self.stats.note_reconnect(now)
            elif isinstance(action, BooksStale):
                self.stats.books.invalidate()
            elif isinstance(action, Expect):
                self.stats.expect(action.symbols)
            elif isinstance(action, Stalled):
                self.stats.stalls += 1
                self.stats.note_error(f"stream stalled: {action}")
                self._warn(f"the stream is stalled: {action}")
            elif isinstance(action, Warn):
                self._warn(action.text)
            elif isinstance(action, NoteError):
                self.stats.note_error(action.text)
            elif isinstance(action, ConnectionStatus):
                self.info.connection_status = action.status
            elif isinstance(action, OpenConnection):
                self._open(action, now)
            elif isinstance(action, Fail):
                self.info.phase = str(self.supervisor.phase)
                raise AlpacaAuthRefused(action.message, code=action.code, hint=action.hint)
        self.info.phase = str(self.supervisor.phase)

    def _handshake(self, now: float) -> None:
        connection_id = self.supervisor.connection_id
        key, secret = self.upstream.credentials()
        try:
            payloads = self.supervisor.handshake(key, secret)
            for payload in payloads:
                self.upstream.send(connection_id, payload)
        except AlpacaMdError as exc:
            self._execute(self.supervisor.send_failed(str(exc), now), now)
            return
        finally:
            del key, secret
        self._execute(self.supervisor.sent(now), now)

    def _keepalive(self, action: Keepalive, now: float) -> None:
        connection_id = self.supervisor.connection_id
        try:
            for payload in action.payloads:
                self.upstream.send(connection_id, payload)
        except AlpacaMdError as exc:
            self._execute(self.supervisor.send_failed(str(exc), now), now)
            return
        self._execute(self.supervisor.sent(now), now)

    def _open(self, action: OpenConnection, now: float) -> None:
        opener = self.upstream.open_connection
        assert opener is not None  # checked in __init__
        try:
            new_id = opener(action.connection_id)
        except AlpacaMdError as exc:
            self._execute(self.supervisor.open_failed(str(exc), now), now)
            return
        self.info.connection_id = new_id
        self._execute(self.supervisor.connection_opened(new_id, now), now)
