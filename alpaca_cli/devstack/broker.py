"""In-process pub/sub broker shared by every stand-in of the embedded platform.

It plays the part of the message bus behind Dapr (NATS or Redis on a real platform) with the
semantics the platform relies on:

* **No retention.** A message reaches only the subscriptions that exist when it is published;
  a topic nobody listens to swallows it (the spec: "the reply topic has no replay").
* **Consumer groups.** Subscriptions sharing a ``group`` on one topic compete: each message goes
  to exactly one of them (whichever asks first). ``group=None`` gives a group of one, so such a
  subscription sees every message published after it subscribed. A group lives while it has
  members; a member joining a live group shares that group's backlog.
* **Acknowledgements.** Every :class:`Delivery` must be settled with :meth:`BrokerSubscription.ack`,
  :meth:`~BrokerSubscription.retry` (redelivered to the group with ``attempt + 1``) or
  :meth:`~BrokerSubscription.drop` (republished unchanged to the subscription's dead-letter
  topic, if any).
  Deliveries still unsettled when a member closes go back to its group if others remain.
* **Pub/sub component names.** Topics are namespaced by the event's ``pubsubname`` (and
  ``subscribe(pubsub=...)``), so one broker can stand behind several Dapr components.

Buffering (the "cheap when quiet, bounded when busy" rule):

* ``publish`` never blocks and never awaits. Each group has a pending buffer of ``max_pending``
  deliveries (default :data:`DEFAULT_MAX_PENDING`). **Overflow policy: drop oldest.** When the
  buffer is full the oldest pending delivery is discarded, counted in
  :attr:`BrokerSubscription.dropped` / :attr:`Broker.dropped`, and a warning is logged once per
  group.
* Each member may hold at most ``max_in_flight`` unsettled deliveries (default
  :data:`DEFAULT_MAX_IN_FLIGHT`, like NATS JetStream's MaxAckPending). Past that, ``get`` waits for
  acks, so a slow consumer makes the backlog grow in the pending buffer (backpressure) instead of
  losing messages, until the pending buffer itself is full.

Threading: everything runs on the event loop that owns the broker. The only method safe to call
from another thread is :meth:`Broker.publish_threadsafe`.

Example::

    broker = Broker()
    sub = broker.subscribe("prices")
    broker.publish("prices", CloudEvent(id="1", source="me", type="t", topic="prices"))
    d = await sub.get()
    sub.ack(d)
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final, Literal

__all__ = [
    "DEFAULT_MAX_IN_FLIGHT",
    "DEFAULT_MAX_PENDING",
    "Broker",
    "BrokerSubscription",
    "CloudEvent",
    "Delivery",
    "SubscriptionClosed",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_PENDING = 100_000
"""Deliveries a group buffers before the oldest is dropped (about 20 s of a busy Alpaca feed)."""

DEFAULT_MAX_IN_FLIGHT = 10_000
"""Unsettled deliveries one member may hold before ``get`` waits for acks."""


@dataclass(slots=True)
class CloudEvent:
    """One CloudEvents 1.0 envelope as the bus carries it.

    ``data`` stays bytes end to end: the broker never parses payloads. ``extensions`` holds every
    attribute other than the named ones (``correlationid``, ``websocketId``, ``time``,
    ``traceid`` ...), with JSON-compatible values.
    """

    id: str
    source: str
    type: str
    topic: str
    pubsubname: str = "pubsub"
    specversion: str = "1.0"
    datacontenttype: str = "application/json"
    data: bytes = b""
    extensions: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class Delivery:
    """One hand-over of an event to one group; settle it exactly once.

    Identity matters (``eq=False``): the same event is a different delivery per group and per
    attempt. ``attempt`` starts at 1 and grows with every :meth:`BrokerSubscription.retry`.
    """

    event: CloudEvent
    attempt: int = 1


class SubscriptionClosed(Exception):
    """Raised by :meth:`BrokerSubscription.get` once the subscription (or broker) is closed."""


class _Group:
    """The pending buffer and the idle members of one consumer group on one topic."""

    __slots__ = ("dropped", "key", "max_pending", "members", "pending", "waiters", "warned")

    def __init__(self, key: object, max_pending: int) -> None:
        self.key = key
        self.max_pending = max_pending
        self.pending: deque[Delivery] = deque()
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.members: list[BrokerSubscription] = []
        self.dropped = 0
        self.warned = False

    def offer(self, delivery: Delivery, *, front: bool = False) -> int:
        """Buffer ``delivery`` and wake one idle member; return how many were dropped (0 or 1)."""
        lost = 0
        if len(self.pending) >= self.max_pending:
            self.pending.popleft()
            self.dropped += 1
            lost = 1
            if not self.warned:
                self.warned = True
                logger.warning(
                    "broker: group %r buffer full (%d); dropping oldest deliveries",
                    self.key,
                    self.max_pending,
                )
        if front:
            self.pending.appendleft(delivery)
        else:
            self.pending.append(delivery)
        self.wake_one()
        return lost

    def wake_one(self) -> None:
        # Wake-ups carry no item: the woken member pops the buffer itself when it runs, so a
        # member cancelled between wake-up and resumption cannot lose a message.
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


class BrokerSubscription:
    """One member of a consumer group; created by :meth:`Broker.subscribe`.

    Call :meth:`get` (or :meth:`get_nowait`) for the next delivery, settle each delivery once,
    and :meth:`close` when done. Settling a delivery twice, or after close, is ignored.
    """

    def __init__(
        self,
        broker: Broker,
        key: tuple[str, str],
        group: _Group,
        dead_letter_topic: str | None,
        max_in_flight: int | None,
    ) -> None:
        self._broker = broker
        self._key = key
        self._group = group
        self.dead_letter_topic = dead_letter_topic
        """Topic that :meth:`drop` republishes to (in the same pub/sub component)."""
        self._max_in_flight = max_in_flight
        self._in_flight: dict[Delivery, None] = {}
        self._waiter: asyncio.Future[None] | None = None
        self._capacity: asyncio.Future[None] | None = None
        self._closed = False

    @property
    def pubsub(self) -> str:
        return self._key[0]

    @property
    def topic(self) -> str:
        return self._key[1]

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def dropped(self) -> int:
        """Deliveries this subscription's group lost to buffer overflow (drop-oldest policy)."""
        return self._group.dropped

    @property
    def in_flight(self) -> int:
        """Deliveries handed out and not yet settled."""
        return len(self._in_flight)

    def _take(self) -> Delivery | None:
        if self._max_in_flight is not None and len(self._in_flight) >= self._max_in_flight:
            return None
        pending = self._group.pending
        if not pending:
            return None
        delivery = pending.popleft()
        self._in_flight[delivery] = None
        return delivery

    def get_nowait(self) -> Delivery | None:
        """Return the next delivery if one is ready (and in-flight room allows), else ``None``.

        Lets a consumer drain a burst without a suspension per message.

        Raises:
            SubscriptionClosed: the subscription is closed.
        """
        if self._closed:
            raise SubscriptionClosed(self.topic)
        return self._take()

    async def get(self) -> Delivery:
        """Wait for the next delivery to this member.

        Raises:
            SubscriptionClosed: the subscription is (or gets) closed.
        """
        loop = asyncio.get_running_loop()
        while True:
            if self._closed:
                raise SubscriptionClosed(self.topic)
            delivery = self._take()
            if delivery is not None:
                return delivery
            waiter: asyncio.Future[None] = loop.create_future()
            full = self._max_in_flight is not None and len(self._in_flight) >= self._max_in_flight
            if full:
                self._capacity = waiter
            else:
                self._waiter = waiter
                self._group.waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                if not full:
                    if waiter.done() and not waiter.cancelled():
                        self._group.wake_one()  # pass on a wake-up meant for an item
                    else:
                        self._discard_waiter(waiter)
                raise
            finally:
                self._waiter = None
                self._capacity = None

    def _discard_waiter(self, waiter: asyncio.Future[None]) -> None:
        with contextlib.suppress(ValueError):
            self._group.waiters.remove(waiter)

    def _settle(self, delivery: Delivery) -> bool:
        if self._in_flight.pop(delivery, _MISSING) is _MISSING:
            return False
        capacity = self._capacity
        if capacity is not None and not capacity.done():
            capacity.set_result(None)
        return True

    def ack(self, delivery: Delivery) -> None:
        """The consumer processed ``delivery``: forget it."""
        self._settle(delivery)

    def retry(self, delivery: Delivery) -> None:
        """Redeliver ``delivery`` to the group (any member) with ``attempt + 1``."""
        if self._settle(delivery) and not self._closed:
            self._broker._count_drops(
                self._group.offer(Delivery(delivery.event, delivery.attempt + 1))
            )

    def drop(self, delivery: Delivery) -> None:
        """Give up on ``delivery``: republish it to the dead-letter topic if set, else discard.

        The event is republished unchanged, as daprd republishes the original bytes: its
        ``topic`` attribute still names the topic it was first published to.
        """
        if self._settle(delivery) and self.dead_letter_topic is not None:
            self._broker.publish(self.dead_letter_topic, delivery.event)

    def close(self) -> None:
        """Leave the group. Unsettled deliveries return to the group if other members remain.

        A pending :meth:`get` raises :class:`SubscriptionClosed`. Idempotent.
        """
        if self._closed:
            return
        self._closed = True
        group = self._group
        group.members.remove(self)
        waiter, capacity = self._waiter, self._capacity
        if capacity is not None and not capacity.done():
            capacity.set_result(None)
        if waiter is not None:
            if waiter.done():
                group.wake_one()  # we were woken for an item we will never take: pass it on
            else:
                self._discard_waiter(waiter)
                waiter.set_result(None)
        unsettled = list(self._in_flight)
        self._in_flight.clear()
        if group.members:
            for delivery in reversed(unsettled):
                self._broker._count_drops(
                    group.offer(Delivery(delivery.event, delivery.attempt + 1), front=True)
                )
        else:
            self._broker._remove_group(self._key, group)

    def __repr__(self) -> str:
        return (
            f"<BrokerSubscription {self.pubsub}/{self.topic} group={self._group.key!r}"
            f" pending={len(self._group.pending)} in_flight={len(self._in_flight)}"
            f"{' closed' if self._closed else ''}>"
        )


_MISSING: Final[Any] = object()


class _Unset(enum.Enum):
    """Sentinel type for "argument not given" where ``None`` is a meaningful value."""

    UNSET = enum.auto()


class Broker:
    """The bus: topics (per pub/sub component name) and their consumer groups.

    **Parameters**

    * ``max_pending`` - per-group buffer size before the oldest delivery is dropped.
    * ``max_in_flight`` - unsettled deliveries per member before ``get`` waits (``None``: no cap).
    * ``loop`` - the loop that owns the broker; otherwise the loop running the constructor, or
      that of the first ``subscribe`` or ``publish``. Needed only by :meth:`publish_threadsafe`.
    """

    def __init__(
        self,
        *,
        max_pending: int = DEFAULT_MAX_PENDING,
        max_in_flight: int | None = DEFAULT_MAX_IN_FLIGHT,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        if max_in_flight is not None and max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1 or None")
        self.max_pending = max_pending
        self.max_in_flight = max_in_flight
        self._loop = loop
        self._bind()  # constructed on its loop (the usual case): publish_threadsafe works at once
        self._topics: dict[tuple[str, str], dict[object, _Group]] = {}
        self._closed = False
        self.published = 0
        """Events accepted by :meth:`publish` (whether or not anyone listened)."""
        self.dropped = 0
        """Deliveries lost to full group buffers, over all groups (drop-oldest policy)."""

    def _bind(self) -> None:
        if self._loop is None:
            with contextlib.suppress(RuntimeError):
                self._loop = asyncio.get_running_loop()

    def _count_drops(self, n: int) -> None:
        self.dropped += n

    def publish(self, topic: str, event: CloudEvent) -> None:
        """Hand ``event`` to every group subscribed to ``topic`` in ``event.pubsubname``.

        Loop thread only. Never blocks; a full group buffer drops its oldest delivery. After
        :meth:`close` events are discarded, so late publishers during shutdown are harmless.
        """
        if self._loop is None:
            self._bind()
        if self._closed:
            return
        self.published += 1
        groups = self._topics.get((event.pubsubname, topic))
        if not groups:
            return
        for group in groups.values():
            if group.offer(Delivery(event)):
                self.dropped += 1

    def publish_threadsafe(self, topic: str, event: CloudEvent) -> None:
        """:meth:`publish` from any thread: scheduled on the broker's loop, returns at once.

        Raises:
            RuntimeError: the broker does not know its loop yet (pass ``loop=`` or use it on the
                loop first), or that loop is closed.
        """
        if self._loop is None:
            raise RuntimeError("Broker has no event loop yet: construct it with loop=...")
        self._loop.call_soon_threadsafe(self.publish, topic, event)

    def subscribe(
        self,
        topic: str,
        *,
        group: str | None = None,
        dead_letter_topic: str | None = None,
        pubsub: str = "pubsub",
        max_in_flight: int | Literal[_Unset.UNSET] | None = _Unset.UNSET,
    ) -> BrokerSubscription:
        """Join ``group`` on ``topic`` (``None``: a group of one) and return the membership.

        Only messages published from now on are delivered (a live named group shares its
        backlog with the newcomer). ``max_in_flight`` overrides the broker default.

        Raises:
            RuntimeError: the broker is closed.
        """
        if self._closed:
            raise RuntimeError("Broker is closed")
        self._bind()
        key = (pubsub, topic)
        groups = self._topics.setdefault(key, {})
        gkey: object = object() if group is None else group
        grp = groups.get(gkey)
        if grp is None:
            grp = groups[gkey] = _Group(group if group is not None else "<own>", self.max_pending)
        cap = self.max_in_flight if max_in_flight is _Unset.UNSET else max_in_flight
        sub = BrokerSubscription(self, key, grp, dead_letter_topic, cap)
        grp.members.append(sub)
        return sub

    def _remove_group(self, key: tuple[str, str], group: _Group) -> None:
        groups = self._topics.get(key)
        if groups is None:
            return
        for gkey, grp in list(groups.items()):
            if grp is group:
                del groups[gkey]
        if not groups:
            del self._topics[key]

    def subscriber_count(self, topic: str, *, pubsub: str = "pubsub") -> int:
        """Live subscriptions on ``topic``: lets a caller wait until a consumer is attached."""
        groups = self._topics.get((pubsub, topic), {})
        return sum(len(g.members) for g in groups.values())

    def close(self) -> None:
        """Close every subscription and refuse new ones; later publishes are discarded."""
        self._closed = True
        for groups in list(self._topics.values()):
            for grp in list(groups.values()):
                for sub in list(grp.members):
                    sub.close()
        self._topics.clear()

    @property
    def closed(self) -> bool:
        return self._closed
