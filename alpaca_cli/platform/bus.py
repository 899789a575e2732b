"""The bus seam: how one invocation publishes CloudEvents and consumes topics.

Like httpx's transport, the bus is the one place where the platform's pub/sub is reached, and
everything above it (the controller RPC, the topic consumer behind ``tail`` and ``run``) is
written against this small protocol only. Implementations:

* :class:`alpaca_cli.platform.pubsub.PubsubClient`: a local Dapr sidecar (a job inside the
  cluster, ``dapr run ... -- alpaca-md``);
* the gateway's gRPC ``virtufin.Pubsub`` (an operator outside the cluster), added beside it;
* tests may pass any object of this shape.

Contract (every implementation):

* :meth:`Bus.subscribe` returns once the subscription is open: an event published after it
  returns is delivered, one published before may not be (neither bus replays).
* :meth:`BusSubscription.get` returns the next :class:`Event`, ``None`` when ``timeout``
  passes, raises ``EOFError`` once the subscription is closed, and raises our error tree
  (:mod:`alpaca_cli.errors`) when the stream fails for good.
* Nothing is raised into an implementation's threads from outside: callers stop waiting by
  polling ``get`` with short timeouts, never by interrupting it.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import orjson

from alpaca_cli.closing import Closing
from alpaca_cli.errors import AlpacaMdError

__all__ = [
    "QUEUE_BYTES",
    "QUEUE_SIZE",
    "SOURCE",
    "Bus",
    "BusSubscription",
    "Event",
    "QueuedSubscription",
    "grpc_details",
]

QUEUE_SIZE: Final = 4096
"""Events one subscription buffers between its reader and the consumer."""
QUEUE_BYTES: Final = 8 * 1024 * 1024
"""Bytes of event data one subscription buffers, whatever the count: a frame can hold 500
messages (150 kB), so 4096 of them could be half a gigabyte behind a slow consumer."""

SOURCE: Final = "alpaca-md"
"""``source`` of the CloudEvents we publish."""


@dataclass(slots=True)
class Event:
    """One CloudEvent received from a topic.

    ``received_ns`` is the wall-clock time (``time.time_ns()``) at which the reader took it off
    the stream, for latency figures.
    """

    id: str
    source: str
    type: str
    topic: str
    data_content_type: str
    data: bytes
    extensions: dict[str, Any] = field(default_factory=dict)
    received_ns: int = 0

    def json(self) -> Any:
        """``data`` parsed as JSON.

        Raises:
            orjson.JSONDecodeError: it is not JSON.
        """
        return orjson.loads(self.data)


class BusSubscription(Protocol):
    """A topic being consumed; events come out of :meth:`get` in order."""

    topic: str
    received: int
    """Events taken off the stream so far."""

    def get(self, timeout: float | None = None) -> Event | None:
        """The next event, or ``None`` after ``timeout`` seconds without one."""
        ...

    def pending(self) -> bool:
        """True when :meth:`get` would return an event at once."""
        ...

    def __iter__(self) -> Iterator[Event]: ...

    def close(self, linger: float = 0.0) -> None:
        """End the stream (idempotent); ``linger`` lets the last acknowledgements go out."""
        ...


class Bus(Protocol):
    """Publish CloudEvents of our own making and subscribe to topics."""

    name: str
    """``dapr`` or ``gateway``: shown by ``-v`` and in the run report."""

    def connect(self) -> None:
        """Reach the bus now (idempotent); otherwise the first call does it."""
        ...

    def publish(
        self,
        topic: str,
        data: Mapping[str, Any] | bytes,
        *,
        type: str,
        id: str | None = None,
        source: str = SOURCE,
        extensions: Mapping[str, str] | None = None,
        data_content_type: str = "application/json",
    ) -> str:
        """Publish one CloudEvent; returns its id. ``data`` is never logged (it may hold a
        secret: a ``send_raw`` command carries the Alpaca auth message)."""
        ...

    def subscribe(self, topic: str, *, queue_size: int = QUEUE_SIZE) -> BusSubscription:
        """Open a subscription to ``topic``; it receives what is published after this returns."""
        ...

    def close(self) -> None:
        """Close every subscription, then the connection. Idempotent."""
        ...


class _Failure:
    """Queued by a reader thread when its stream fails for good; the consumer re-raises it."""

    __slots__ = ("error",)

    def __init__(self, error: AlpacaMdError) -> None:
        self.error = error


_CLOSED: Final = object()


class QueuedSubscription(Closing):
    """The consumer half both buses share: a reader thread puts events into a bounded queue,
    one consumer takes them out with :meth:`get`.

    A subclass starts the reader (:meth:`_start_reader`) whose loop calls :meth:`_put` per
    event, :meth:`_fail` when the stream fails for good and :meth:`_end` when it stops, and
    implements :meth:`_stop_reading` (wake the reader: close the SDK stream, cancel the call).

    When the queue is full (``queue_size`` events, or :data:`QUEUE_BYTES` of their data) the
    reader waits, which stops it reading its stream: HTTP/2 flow control then pushes back on
    the server; nothing is dropped here.
    Thread use: one consumer thread calls :meth:`get`; :meth:`close` may be called from any
    thread (it wakes the consumer, which then sees end of stream).
    """

    def __init__(self, topic: str, *, queue_size: int = QUEUE_SIZE) -> None:
        self.topic = topic
        self._queue: queue.Queue[Event | _Failure | object] = queue.Queue(queue_size)
        self._held = 0
        """Bytes of event data queued and not yet taken."""
        self._room = threading.Condition()
        self._closed = threading.Event()
        self._ended = False
        self._thread: threading.Thread | None = None
        self.received = 0
        """Events taken off the stream so far."""

    def _start_reader(self, name: str) -> None:
        self._thread = threading.Thread(target=self._read, name=name, daemon=True)
        self._thread.start()

    def _read(self) -> None:  # pragma: no cover - every subclass has its own
        raise NotImplementedError

    def _stop_reading(self) -> None:
        """Wake the reader thread so that it sees :attr:`_closed` (subclass hook)."""

    # -- the reader's side ------------------------------------------------------------------------

    def _put(self, event: Event) -> None:
        """Queue one event, waiting while the queue is full (until closed)."""
        self.received += 1
        closed = self._closed
        size = len(event.data)
        with self._room:
            # One event always fits, however big: the budget bounds the backlog, not a frame.
            while self._held and self._held + size > QUEUE_BYTES and not closed.is_set():
                self._room.wait(0.25)
            self._held += size
        while not closed.is_set():
            try:
                self._queue.put(event, timeout=0.25)
                return
            except queue.Full:
                continue

    def _fail(self, error: AlpacaMdError) -> None:
        self._offer(_Failure(error))

    def _end(self) -> None:
        self._offer(_CLOSED)

    def _offer(self, item: object) -> None:
        """Queue ``item`` even when the queue is full (the consumer may be gone)."""
        while True:
            try:
                self._queue.put_nowait(item)
                return
            except queue.Full:
                with contextlib.suppress(queue.Empty):
                    self._queue.get_nowait()

    # -- the consumer's side ----------------------------------------------------------------------

    def get(self, timeout: float | None = None) -> Event | None:
        """The next event, or ``None`` when ``timeout`` seconds pass without one.

        Raises:
            EOFError: the subscription was closed (by :meth:`close`).
            PlatformUnreachable, CredentialsRefused, UsageError, ...: the stream failed.
        """
        if self._ended:
            raise EOFError(f"subscription to {self.topic!r} is closed")
        try:
            item = self._queue.get(timeout=timeout) if timeout != 0 else self._queue.get_nowait()
        except queue.Empty:
            return None
        if isinstance(item, Event):
            with self._room:
                self._held -= len(item.data)
                self._room.notify()
            return item
        self._ended = True
        if isinstance(item, _Failure):
            raise item.error
        raise EOFError(f"subscription to {self.topic!r} is closed")

    def pending(self) -> bool:
        """True when an event is waiting (``get(timeout=0)`` would not return ``None``)."""
        return not self._queue.empty()

    def __iter__(self) -> Iterator[Event]:
        """Events until the subscription is closed (blocking)."""
        while True:
            try:
                event = self.get()
            except EOFError:
                return
            if event is not None:
                yield event

    def close(self, linger: float = 0.0) -> None:
        """End the stream. Idempotent.

        Args:
            linger: seconds to wait first so that the last acknowledgements reach the server
                (an ack queued right before closing is often lost, and a real sidecar would
                then redeliver it to the next consumer of its app id).
        """
        if self._closed.is_set():
            return
        if linger > 0:
            time.sleep(linger)
        self._closed.set()
        with contextlib.suppress(Exception):
            self._stop_reading()
        self._offer(_CLOSED)
        thread = self._thread
        if thread is not None and threading.current_thread() is not thread:
            thread.join(timeout=2.0)


def grpc_details(rpc: Any) -> str:
    """The text of a gRPC error (``details()``, else ``message()``), else its class name: never
    the multi-line ``str`` of an ``RpcError``, since messages are one line."""
    for attr in ("details", "message"):
        fn = getattr(rpc, attr, None)
        if callable(fn):
            with contextlib.suppress(Exception):
                text = fn()
                if text:
                    return str(text)
    return type(rpc).__name__
