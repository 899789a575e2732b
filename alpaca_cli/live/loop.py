"""The streaming phase of ``run``: consume the topic, keep the model current, heal the session.

The WebSocketManager reconnects a dropped Alpaca socket but never resends the handshake, so the
stream would go silent. This loop feeds every decoded message to
:class:`~alpaca_cli.alpaca.session.ClientSession`, which says when a new socket appeared (a
``connected`` welcome on the topic, or a 401). The loop then resends auth and the confirmed
subscriptions through the controller's ``send_raw``, marks the books stale until their next
reset and counts the reconnect. A ``reconnected`` lifecycle event on
``websocketmanager.lifecycle`` is the fallback when no welcome shows up.

On 406 (the key's connection slot is still held, ~90 s for a dead socket) it waits a jittered,
growing delay (:func:`~alpaca_cli.alpaca.session.backoff_delays`, 150 s in total) before each
new handshake; 402/409 end the run (exit 4).

Single-threaded on purpose: the loop wakes at least every :data:`POLL` seconds, redraws the view
at its own steady rate and never lets the view read the model while it changes.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from alpaca_cli.alpaca.session import (
    AlpacaFailure,
    ClientSession,
    DataResumed,
    Event,
    RehandshakeNeeded,
    SubscriptionConfirmed,
    backoff_delays,
)
from alpaca_cli.errors import AlpacaAuthRefused, AlpacaMdError
from alpaca_cli.live.stats import RunInfo, StreamStats

if TYPE_CHECKING:
    from alpaca_cli.platform.pubsub import Subscription
    from alpaca_cli.stream import StreamItem, TopicStream

__all__ = ["BATCH", "LIFECYCLE_TOPIC", "POLL", "StreamLoop", "View"]

POLL = 0.1
"""Longest wait for a frame before the loop does its housekeeping (redraw, timers)."""
BATCH = 500
"""Frames processed back to back before housekeeping runs, when they keep coming."""
LIFECYCLE_TOPIC = "websocketmanager.lifecycle"
LIFECYCLE_FALLBACK = 2.0
"""Seconds to wait for the welcome after a ``connected`` lifecycle event before re-handshaking."""
STATUS_INTERVAL = 5.0
"""Seconds between refreshes of the worker and connection status in the header."""


class View(Protocol):
    def tick(self, now: float, *, force: bool = False) -> None: ...


class StreamLoop:
    """Runs until ``stop`` is set, the deadline passes, or the session fails for good.

    Parameters:
        stream: the topic consumer (opened before ``publish``, so nothing was missed).
        lifecycle: the WSM's lifecycle topic, or ``None``.
        session: the Alpaca session as seen on the topic. The first handshake went out before
            the loop (``run``'s auth and subscribe steps), so the loop marks it sent: any
            welcome from now on is a new socket.
        stats, info, view: the model, the header, and the view to tick.
        connection_id: our connection; frames and events of others are ignored.
        send: sends one payload upstream (controller ``send_raw``); may raise our errors.
        credentials: ``(key, secret)``, asked for at each re-handshake and never kept.
        clock: monotonic seconds.
        stop: set by a signal or by the caller.
        deadline: ``clock()`` value at which to stop (``--duration``), or ``None``.
        stall_limit: seconds of silence reported as a stall (0 turns it off).
        refresh_status: updates ``info``'s worker/connection status (called every few seconds).
        warn: one line for the operator.
    """

    def __init__(
        self,
        *,
        stream: TopicStream,
        lifecycle: Subscription | None,
        session: ClientSession,
        stats: StreamStats,
        info: RunInfo,
        view: View,
        connection_id: str,
        send: Callable[[bytes], None],
        credentials: Callable[[], tuple[str, str]],
        clock: Callable[[], float],
        stop: threading.Event,
        deadline: float | None,
        stall_limit: float,
        refresh_status: Callable[[], None] | None = None,
        warn: Callable[[str], None] = lambda text: None,
        rng: random.Random | None = None,
    ) -> None:
        self.stream = stream
        self.lifecycle = lifecycle
        self.session = session
        session.mark_handshake_sent()
        self.stats = stats
        self.info = info
        self.view = view
        self.connection_id = connection_id
        self._send = send
        self._credentials = credentials
        self._clock = clock
        self.stop = stop
        self.deadline = deadline
        self.stall_limit = stall_limit
        self._refresh_status = refresh_status
        self._warn = warn
        self._rng = rng or random.Random()
        self._backoff: Iterator[float] | None = None
        self._backoff_until = 0.0
        self._handshake_at: float | None = None
        self._send_failures = 0
        self._lifecycle_reset_at: float | None = None
        self._welcome_reconnect_at: float | None = None
        """When the last re-handshake triggered by a welcome on the topic was scheduled: the WSM's
        ``connected`` lifecycle event for that same reconnect may arrive after the welcome, and
        must not arm the fallback (that would send a second auth: Alpaca's 403)."""
        self._stalled = False
        self._quiet_since = 0.0
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
        self._quiet_since = now
        self._next_status = now + STATUS_INTERVAL
        self.info.phase = "streaming"
        while True:
            now = self._clock()
            if self.stop.is_set():
                return self.end_reason or "stop requested"
            if self.deadline is not None and now >= self.deadline:
                return "duration reached"
            timeout = 0.0 if self.stream.pending() else POLL
            if self.deadline is not None:
                timeout = max(0.0, min(timeout, self.deadline - now))
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
        if self._lifecycle_reset_at is not None and now >= self._lifecycle_reset_at:
            self._lifecycle_reset_at = None
            self._events(self.session.connection_reset(), now)
        if self._handshake_at is not None and now >= self._handshake_at:
            self._handshake(now)
        self._check_stall(now)
        if self._refresh_status is not None and now >= self._next_status:
            self._next_status = now + STATUS_INTERVAL
            try:
                self._refresh_status()
            except AlpacaMdError as exc:
                self.info.worker_status = "unknown"
                self.stats.note_error(f"status refresh failed: {exc}")
        self.view.tick(now)

    # -- frames -----------------------------------------------------------------------------------

    def _item(self, item: StreamItem) -> None:
        ws = item.meta.websocket_id
        if ws is not None and ws != self.connection_id:
            return
        now = self._clock()
        if item.error is not None:
            self.stats.note_decode_error(item.error)
            return
        before = self.stats.data_messages
        self.stats.record(item.messages, now=now, received_ns=item.received_ns)
        if self.stats.data_messages != before:
            self._quiet_since = now
            if self._stalled:
                self._stalled = False
                self.info.phase = "streaming"
        self._events(self.session.receive_all(item.messages), now)

    def _events(self, events: list[Event], now: float) -> None:
        for event in events:
            if isinstance(event, RehandshakeNeeded):
                self._lifecycle_reset_at = None
                self._welcome_reconnect_at = now
                self.stats.note_reconnect()
                self.info.phase = "re-handshake"
                self._warn(
                    "the upstream connection was re-established "
                    f"(reconnect {self.stats.reconnects}): sending auth and the subscriptions again"
                )
                self._handshake_at = max(now, self._backoff_until)
            elif isinstance(event, AlpacaFailure):
                self._failure(event, now)
            elif isinstance(event, SubscriptionConfirmed):
                symbols = [s for channel in event.channels.values() for s in channel]
                if symbols:
                    self.stats.expect(symbols)
                self._backoff = None
                self._backoff_until = 0.0
                if self.info.phase != "stalled":
                    self.info.phase = "streaming"
            elif isinstance(event, DataResumed):
                self.info.phase = "streaming"

    def _failure(self, failure: AlpacaFailure, now: float) -> None:
        if failure.fatal:
            raise AlpacaAuthRefused(
                f"Alpaca refused the re-handshake: {failure.code} {failure.msg}.",
                code=failure.code,
                hint="Check ALPACA_API_KEY / ALPACA_API_SECRET and the account's plan.",
            )
        if failure.code == 406:
            if self._backoff is None:
                self._backoff = backoff_delays(self._rng, maximum=8.0)
            delay = next(self._backoff, None)
            if delay is None:
                raise AlpacaAuthRefused(
                    "Alpaca kept answering 406 connection limit exceeded for longer than "
                    "its ~90 s slot release.",
                    code=406,
                    hint="Another client uses these keys: stop it, or wait and run again.",
                )
            self._backoff_until = now + delay
            self._handshake_at = self._backoff_until
            self.info.phase = "406 backoff"
            self._warn(f"Alpaca 406 connection limit exceeded: trying again in {delay:.1f} s")

    def _handshake(self, now: float) -> None:
        self._handshake_at = None
        key, secret = self._credentials()
        try:
            for payload in self.session.handshake(key, secret):
                self._send(payload)
        except AlpacaMdError as exc:
            self._send_failures += 1
            self.stats.note_error(f"re-handshake failed: {exc}")
            if self._send_failures <= 5:
                self._handshake_at = now + 1.0
            return
        finally:
            del key, secret
        self._send_failures = 0

    # -- lifecycle and stalls ---------------------------------------------------------------------

    def _drain_lifecycle(self, now: float) -> None:
        sub = self.lifecycle
        if sub is None:
            return
        for _ in range(100):
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
            self._lifecycle_event(event.type, event.data, now)

    def _lifecycle_event(self, type_: str, data: bytes, now: float) -> None:
        try:
            doc: Any = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        if not isinstance(doc, dict):
            return
        conn = doc.get("connection_id") or doc.get("connectionId")
        if conn != self.connection_id:
            return
        kind = type_.rsplit(".", 1)[-1]
        self.info.connection_status = kind.upper()
        if kind in ("reconnecting", "disconnected", "error"):
            self.stats.books.invalidate()
            self.info.phase = kind
        elif kind == "connected" and doc.get("attempt"):
            handled = self._welcome_reconnect_at
            if handled is None or now - handled > LIFECYCLE_FALLBACK:
                self._lifecycle_reset_at = now + LIFECYCLE_FALLBACK

    def _check_stall(self, now: float) -> None:
        if self.stall_limit <= 0 or self._stalled:
            return
        silent = now - self._quiet_since
        if silent > self.stall_limit:
            self._stalled = True
            self.info.phase = "stalled"
            text = f"no data for {silent:.0f} s (stall limit {self.stall_limit:g} s)"
            self.stats.note_error(f"stream stalled: {text}")
            self._warn(f"the stream is stalled: {text}")
