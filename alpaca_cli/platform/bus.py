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

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import orjson

__all__ = ["QUEUE_SIZE", "SOURCE", "Bus", "BusSubscription", "Event"]

QUEUE_SIZE: Final = 4096
"""Events one subscription buffers between its reader and the consumer."""

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
