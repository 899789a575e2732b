"""The topic consumer shared by ``tail``, ``auth``/``subscribe`` (waiting for Alpaca's answer) and
``run``: published frames in, decoded Alpaca messages and up-to-date L2 books out.

Per event the work is bounded and small: unwrap the frame (:mod:`alpaca_cli.platform.frames`),
decode the payload with the one Alpaca codec, apply order-book messages to :class:`Books`. A
payload that does not decode is data, not a crash: it comes out as an item with ``error`` set.
Counting is the consumer's business: ``run`` keeps the one statistics model
(:class:`alpaca_cli.live.stats.StreamStats`), ``tail`` counts what it printed in its result.

Threading: a :class:`TopicStream` is consumed by one thread. ``run`` drives it from a
background thread and stops it with the ``stop`` event (checked at least every
:data:`POLL_INTERVAL`); nothing here installs signal handlers.

Example::

    with TopicStream(pubsub, "alpaca-ticks") as stream:
        for item in stream:                      # until stop is set or the stream ends
            for msg in item.messages: ...
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from alpaca_cli.alpaca.book import Books
from alpaca_cli.alpaca.codec import DecodeError, decode
from alpaca_cli.alpaca.messages import Message
from alpaca_cli.closing import Closing
from alpaca_cli.platform.frames import FrameError, FrameMeta, decode_frame

if TYPE_CHECKING:
    from alpaca_cli.platform.bus import Bus, BusSubscription

__all__ = ["POLL_INTERVAL", "StreamItem", "TopicStream"]

POLL_INTERVAL: Final = 0.1
"""Longest time :meth:`TopicStream.__iter__` blocks before it looks at the stop event."""


@dataclass(slots=True)
class StreamItem:
    """One published frame: when it arrived, where from, and what it held."""

    received_ns: int
    """Wall-clock receive time (``time.time_ns()``) in this process."""
    meta: FrameMeta
    payload: bytes
    messages: list[Message]
    error: str | None = None
    """Why the payload could not be decoded (then ``messages`` is empty)."""


class TopicStream(Closing):
    """A topic's frames, decoded, with an L2 book per symbol kept current.

    Parameters:
        pubsub: the pub/sub client.
        topic: the topic the WSM publishes the connection's frames to.
        books: the books to update (shared with a caller such as ``run``); new ones by default.
        stop: set it (from any thread) to end iteration within :data:`POLL_INTERVAL`.
        linger: seconds :meth:`close` waits for the last acknowledgements to reach the sidecar.
        replay_waited: keep the items :meth:`wait_for` consumed and hand them out again, in
            order, from :meth:`next` (before newer ones). For a caller such as ``run`` that
            reads the stream after the ``auth``/``subscribe`` steps waited on it: the welcome,
            the answers and any early data then still reach its statistics and session.
    """

    def __init__(
        self,
        pubsub: Bus,
        topic: str,
        *,
        books: Books | None = None,
        stop: threading.Event | None = None,
        linger: float = 0.0,
        replay_waited: bool = False,
    ) -> None:
        self.pubsub = pubsub
        self.topic = topic
        self.books = books if books is not None else Books()
        self.stop = stop if stop is not None else threading.Event()
        self.linger = linger
        self.replay_waited = replay_waited
        self._waited: deque[StreamItem] = deque()
        """Items :meth:`wait_for` consumed, not yet handed out by :meth:`next`."""
        self._sub: BusSubscription | None = None

    def __repr__(self) -> str:
        return f"TopicStream(topic={self.topic!r})"

    def open(self) -> TopicStream:
        """Subscribe now (idempotent). Do it before sending anything whose answer you want.

        Raises:
            SidecarUnreachable, CredentialsRefused, UsageError: see the pub/sub client.
        """
        if self._sub is None:
            self._sub = self.pubsub.subscribe(self.topic)
        return self

    def close(self) -> None:
        if self._sub is not None:
            self._sub.close(linger=self.linger)
            self._sub = None

    def __enter__(self) -> TopicStream:
        return self.open()

    # -- reading ----------------------------------------------------------------------------------

    def pending(self) -> bool:
        """True when another item is already waiting (the inbound queue is not drained)."""
        return bool(self._waited) or (self._sub is not None and self._sub.pending())

    def next(self, timeout: float | None = POLL_INTERVAL) -> StreamItem | None:
        """The next item (a replayed one first, see ``replay_waited``), or ``None`` after
        ``timeout`` seconds without one.

        Raises:
            EOFError: the subscription ended (closed).
            SidecarUnreachable, CredentialsRefused, UsageError: the stream failed.
        """
        if self._waited:
            return self._waited.popleft()
        return self._next_new(timeout)

    def _next_new(self, timeout: float | None) -> StreamItem | None:
        """The next item off the subscription, never a replayed one."""
        sub = self.open()._sub
        assert sub is not None
        event = sub.get(timeout=timeout)
        if event is None:
            return None
        return self.process(event.data, event.extensions, event.id, event.received_ns)

    def process(
        self,
        data: bytes,
        extensions: dict[str, object] | None = None,
        event_id: str | None = None,
        received_ns: int | None = None,
    ) -> StreamItem:
        """Decode one published event's data and apply it to the books (no I/O)."""
        received = received_ns or time.time_ns()
        try:
            frame = decode_frame(data, extensions, event_id=event_id)
        except FrameError as exc:
            return StreamItem(received, FrameMeta(event_id=event_id), data, [], str(exc))
        try:
            messages = decode(frame.payload)
        except DecodeError as exc:
            return StreamItem(received, frame.meta, frame.payload, [], str(exc))
        self.books.apply_messages(messages)
        return StreamItem(received, frame.meta, frame.payload, messages)

    def __iter__(self) -> Iterator[StreamItem]:
        """Items until :attr:`stop` is set or the subscription ends."""
        while not self.stop.is_set():
            try:
                item = self.next(POLL_INTERVAL)
            except EOFError:
                return
            if item is not None:
                yield item

    def wait_for(
        self,
        predicate: Callable[[Message], bool],
        timeout: float,
        *,
        on_item: Callable[[StreamItem], None] | None = None,
        interrupt: threading.Event | None = None,
    ) -> Message | None:
        """The first message that satisfies ``predicate`` within ``timeout`` s, else ``None``.

        For commands that send something upstream and read Alpaca's answer off the topic
        (``auth``, ``subscribe``); every item seen is also handed to ``on_item`` (and kept for
        :meth:`next` with ``replay_waited``). Only items that arrive during the wait are
        tested, never replayed ones: an answer to an earlier step cannot answer this one.
        ``interrupt`` is the invocation's stop event (``Runtime.stop``): once set, the wait
        ends within :data:`POLL_INTERVAL` instead of sitting out ``timeout``.

        Raises:
            Interrupted: ``interrupt`` was set before the answer came.
        """
        deadline = time.monotonic() + timeout
        while not self.stop.is_set():
            if interrupt is not None and interrupt.is_set():
                from alpaca_cli.errors import Interrupted

                raise Interrupted(f"stopped while waiting for Alpaca's answer on {self.topic!r}.")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            try:
                item = self._next_new(min(remaining, POLL_INTERVAL))
            except EOFError:
                return None
            if item is None:
                continue
            if self.replay_waited:
                self._waited.append(item)
            if on_item is not None:
                on_item(item)
            for msg in item.messages:
                if predicate(msg):
                    return msg
        return None
