"""The WebSocketManagerController's command/reply RPC over pub/sub.

The controller worker reads JSON commands from a command topic and publishes replies to a reply
topic (``spec/virtufin-platform.md``, "The WebSocketManagerController worker"). Pub/sub is not
RPC, so this module makes it one:

1. subscribe to the reply topic **before** publishing (the topic has no replay: a reply that
   arrives before the subscription exists is lost);
2. publish the command as a CloudEvent with a fresh ``correlationid`` extension;
3. wait for the reply carrying the same ``correlationid``, ignoring every other event (other
   clients' replies, replies to earlier commands that timed out);
4. ``success: false`` -> :class:`~alpaca_cli.errors.CommandRefused` with the controller's
   message; nothing within ``timeout`` -> :class:`~alpaca_cli.errors.ReplyTimeout`.

Commands on one connection (``send_raw``, ``publish``, ``stop_publish``, ``disconnect``) ride
out a rolling update: while the platform answers ``Connection owned by different instance:
<id>`` (the replica that owns the socket is being replaced), the command is sent again with a
growing delay for up to :data:`OWNED_ELSEWHERE_WAIT` seconds (spec, "Newer platform
behaviour"), then it fails with one clear line. The controller's error texts drift in case
(``Websocket``/``WebSocket is not connected``): match them with :func:`says`, never with ``in``
on the raw message.

The reply subscription is opened on the first command and kept until :meth:`close`: the
invocation's runtime owns one controller client, so every step of one invocation (e.g. ``run``'s
connect, publish, auth, subscribe, stream and teardown) shares it. Beside a real sidecar, two
streaming subscriptions of one app id on the reply topic would split the replies between them
(Dapr 1.16+) or the second would be refused (1.14/1.15). Commands take turns (one in flight at a
time, a lock), so a reply is always read by the call waiting for it.

Example::

    with ControllerClient(pubsub, command_topic=..., reply_topic=..., timeout=15) as ctl:
        conn_id = ctl.create("wss://stream.data.alpaca.markets/v1beta3/crypto/us")
        ctl.publish(conn_id, "alpaca-ticks")
"""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import orjson

from alpaca_cli.closing import Closing
from alpaca_cli.errors import CommandRefused, Interrupted, ReplyTimeout
from alpaca_cli.platform.records import ConnectionInfo, parse_connection, pick

if TYPE_CHECKING:
    from alpaca_cli.platform.bus import Bus, BusSubscription

__all__ = [
    "COMMAND_TYPE",
    "CONNECTION_NOT_FOUND",
    "IDEMPOTENT",
    "NOT_CONNECTED",
    "OWNED_ELSEWHERE",
    "OWNED_ELSEWHERE_WAIT",
    "ControllerClient",
    "Reply",
    "owned_elsewhere_delays",
    "says",
]

COMMAND_TYPE: Final = "com.virtufin.websocketmanagercontroller.command"
"""CloudEvent ``type`` of the commands we publish."""

POLL: Final = 0.1
"""Longest single wait on the reply queue before the interrupt event is looked at."""

IDEMPOTENT: Final = frozenset({"publish", "stop_publish", "list", "disconnect", "stop"})
"""Commands sent once more when no reply came (a dropped command, issue 12). ``send_raw`` is
not among them: the same auth frame twice is not harmless to Alpaca; ``create`` never is."""

STOP_GRACE: Final = 1.0
"""Seconds a call still waits for the reply to a command already sent once interrupt is set."""

CONNECTION_NOT_FOUND: Final = "connection not found"
NOT_CONNECTED: Final = "websocket is not connected"
OWNED_ELSEWHERE: Final = "connection owned by different instance"
"""The platform's error texts, lower case: compare them with :func:`says`."""

OWNED_ELSEWHERE_WAIT: Final = 60.0
"""Seconds a command on a connection is retried while another WSM instance owns it (the spec's
"retry with backoff for up to 60 s" of a rolling update)."""


def says(exc: BaseException, text: str) -> bool:
    """Whether an error's message contains ``text``, compared case-insensitively.

    Why: the platform's texts drift in case between builds (``Websocket is not connected`` /
    ``WebSocket is not connected``), and a ``CommandRefused`` also carries our own prefix.
    """
    message = getattr(exc, "message", None) or str(exc)
    return text.lower() in str(message).lower()


def owned_elsewhere_delays() -> Iterator[float]:
    """Delays between retries of a command refused as owned elsewhere: 0.5 s doubling, at
    most 5 s (a replica restart takes seconds; 60 s of them are a dozen tries)."""
    delay = 0.5
    while True:
        yield delay
        delay = min(delay * 2, 5.0)


@dataclass(frozen=True, slots=True)
class Reply:
    """A successful reply: the controller's JSON object."""

    command: str
    data: dict[str, Any]

    @property
    def message(self) -> str:
        return str(self.data.get("message") or "")


class ControllerClient(Closing):
    """Commands to the WebSocketManagerController worker, each one awaited like a call.

    Parameters:
        pubsub: the bus (:class:`~alpaca_cli.platform.bus.Bus`; connected on first use).
        command_topic: where the worker reads commands.
        reply_topic: where it publishes replies.
        timeout: seconds to wait for each reply.
        interrupt: once set (from any thread or a signal handler), a waiting call gives up within
            :data:`STOP_GRACE` seconds with :class:`~alpaca_cli.errors.Interrupted`. It is polled
            between reads of our own reply queue, never raised into the pub/sub client's gRPC
            calls (an exception there can leave the channel's lock held).
    """

    def __init__(
        self,
        pubsub: Bus,
        *,
        command_topic: str,
        reply_topic: str,
        timeout: float,
        interrupt: threading.Event | None = None,
    ) -> None:
        self.pubsub = pubsub
        self.command_topic = command_topic
        self.reply_topic = reply_topic
        self.timeout = timeout
        self.interrupt = interrupt if interrupt is not None else threading.Event()
        self.owned_elsewhere_wait = OWNED_ELSEWHERE_WAIT
        """Seconds :meth:`call_on` retries a command refused as owned elsewhere (a runtime
        shortens it for ``run``'s time-bounded teardown)."""
        self._lock = threading.Lock()
        """Held for a whole command: replies are read by the call that is waiting for one."""
        self._replies: BusSubscription | None = None

    def __repr__(self) -> str:
        return f"ControllerClient(command_topic={self.command_topic!r})"

    def close(self) -> None:
        """Close the reply subscription (the bus stays open). Idempotent."""
        with self._lock:
            replies, self._replies = self._replies, None
        if replies is not None:
            replies.close()

    # -- the RPC ----------------------------------------------------------------------------------

    def call(self, command: str, *, retry: bool | None = None, **arguments: Any) -> Reply:
        """Send one command and wait for its reply; an idempotent one is sent once more
        (with a new correlationid) when no reply came.

        Why the retry: a replica with no matching worker acks and drops a command, with no
        redelivery (``spec/virtufin-platform.md``, "Dropped commands"). ``retry`` defaults to
        whether ``command`` is in :data:`IDEMPOTENT`; ``create`` is never blindly resent
        (see :meth:`create`).

        Raises:
            CommandRefused: the controller answered ``success: false``.
            ReplyTimeout: no reply with our ``correlationid`` within :attr:`timeout`.
            Interrupted: :attr:`interrupt` was set before sending (nothing is sent), or the reply
                did not come within :data:`STOP_GRACE` seconds after it was set.
            SidecarUnreachable, CredentialsRefused, UsageError: from the pub/sub client.
        """
        again = command in IDEMPOTENT if retry is None else retry
        try:
            return self._call_once(command, arguments)
        except ReplyTimeout:
            if not again:
                raise
        return self._call_once(command, arguments)

    def _call_once(self, command: str, arguments: dict[str, Any]) -> Reply:
        self._check_stop(command)
        while not self._lock.acquire(timeout=POLL):  # another thread's command is in flight
            self._check_stop(command)
        try:
            if self._replies is None:
                self._replies = self.pubsub.subscribe(self.reply_topic)
            return self._call(self._replies, command, arguments)
        finally:
            self._lock.release()

    def call_on(self, connection_id: str, command: str, **arguments: Any) -> Reply:
        """:meth:`call` for a command on ``connection_id``, retried through a rolling update.

        While the answer is ``Connection owned by different instance: <id>`` the command is
        sent again (a new correlationid each time) after :func:`owned_elsewhere_delays`, for
        up to :attr:`owned_elsewhere_wait` seconds. Every such command is idempotent on the
        WSM (a resent ``send_raw`` carries an idempotent subscribe or auth).

        Raises:
            CommandRefused: still owned elsewhere after the wait (the last owner's id in the
                message), or any other refusal at once.
            Interrupted: :attr:`interrupt` was set while waiting to retry.
            ReplyTimeout, SidecarUnreachable, CredentialsRefused, UsageError: as :meth:`call`.
        """
        deadline = time.monotonic() + self.owned_elsewhere_wait
        delays = owned_elsewhere_delays()
        tries = 0
        while True:
            tries += 1
            try:
                return self.call(command, id=connection_id, **arguments)
            except CommandRefused as exc:
                if not says(exc, OWNED_ELSEWHERE):
                    raise
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise CommandRefused(
                        f"'{command}' on connection {connection_id} kept failing for "
                        f"{self.owned_elsewhere_wait:g} s ({tries} tries): {exc.message}",
                        status=exc.status,
                        hint="A rolling update of the WebSocketManager has not finished: "
                        "try again once every replica runs (`alpaca-md list` shows the owner).",
                    ) from exc
                if self.interrupt.wait(min(next(delays), remaining)):
                    self._check_stop(command)

    def _call(self, replies: BusSubscription, command: str, arguments: dict[str, Any]) -> Reply:
        correlation_id = uuid.uuid4().hex
        body = {"command": command, **arguments}
        self.pubsub.publish(
            self.command_topic,
            body,
            type=COMMAND_TYPE,
            extensions={"correlationid": correlation_id, "replytopic": self.reply_topic},
        )
        deadline = time.monotonic() + self.timeout
        stopping = False
        while True:
            now = time.monotonic()
            if not stopping and self.interrupt.is_set():
                # The command went out: give its reply a moment, so e.g. a created connection
                # still reaches the state file (and teardown) instead of being orphaned.
                stopping = True
                deadline = min(deadline, now + STOP_GRACE)
            remaining = deadline - now
            if remaining <= 0:
                if stopping:
                    self._check_stop(command)
                raise ReplyTimeout(
                    f"no reply to '{command}' on topic {self.reply_topic!r} within "
                    f"{self.timeout:g} s (correlationid {correlation_id}).",
                    hint="Is the controller worker deployed and running on "
                    f"{self.command_topic!r}? Check with 'alpaca-md list', deploy it with "
                    "'alpaca-md deploy', or raise --timeout.",
                )
            try:
                event = replies.get(timeout=min(remaining, POLL))
            except EOFError:
                self._replies = None
                raise
            if event is None:
                continue
            if str(event.extensions.get("correlationid", "")) != correlation_id:
                continue
            return self._reply_of(command, event.data)

    def _check_stop(self, command: str) -> None:
        if self.interrupt.is_set():
            raise Interrupted(f"stopped while waiting for the controller's reply to '{command}'.")

    def _reply_of(self, command: str, data: bytes) -> Reply:
        try:
            doc = orjson.loads(data)
            if isinstance(doc, str):  # a JSON object sent as a JSON string
                doc = orjson.loads(doc)
        except orjson.JSONDecodeError:
            doc = None
        if not isinstance(doc, dict):
            raise CommandRefused(
                f"the controller answered '{command}' with something that is not a JSON object."
            )
        success = doc.get("success", doc.get("Success"))
        message = str(doc.get("message", doc.get("Message")) or "")
        if success is not True:
            raise CommandRefused(
                f"the controller refused '{command}': {message or 'no message'}.",
                status=str(doc.get("status")) if doc.get("status") else None,
            )
        return Reply(command=str(doc.get("command") or command), data=doc)

    # -- the commands -----------------------------------------------------------------------------

    def create(
        self,
        url: str,
        *,
        auto_reconnect: bool = True,
        tags: Mapping[str, str] | None = None,
        find: Callable[[], str | None] | None = None,
    ) -> str:
        """Open an upstream WebSocket through the WSM; returns the connection id.

        ``create`` is not idempotent: resending it blindly can open two connections (and on
        Alpaca the second one is refused with 406 while the first holds the key's slot). So on
        no reply within :attr:`timeout`, ``find`` (the caller's look-up: a connection with our
        tags and URL, e.g. through the gateway's ``List``) says whether the first ``create``
        did open one; only when it did not is ``create`` sent ONCE more, with a new
        correlationid. Without ``find`` a timeout is final.

        ``tags`` travel beside the arguments too: harmless where the controller ignores them
        (undocumented), and the connection is tagged on create where it takes them.

        Raises:
            ReplyTimeout: no reply, twice (or once without ``find``); nothing was found.
            CommandRefused, Interrupted, SidecarUnreachable: as :meth:`call`.
        """
        arguments: dict[str, Any] = {"url": url, "auto_reconnect": auto_reconnect}
        if tags:
            arguments["tags"] = dict(tags)
        try:
            reply = self.call("create", retry=False, **arguments)
        except ReplyTimeout:
            if find is None:
                raise
            found = find()
            if found:
                return found
            try:
                reply = self.call("create", retry=False, **arguments)
            except ReplyTimeout:
                found = find()
                if found:
                    return found
                raise
        conn_id = pick(reply.data, "id", "connection_id", "connectionId")
        if not isinstance(conn_id, str) or not conn_id:
            raise CommandRefused("the controller answered 'create' without a connection id.")
        return conn_id

    def send_raw(
        self, connection_id: str, payload: bytes, content_type: str = "application/json"
    ) -> Reply:
        """Send one frame upstream. ``payload`` may hold a secret: it is never logged."""
        message = base64.b64encode(payload).decode("ascii")
        return self.call_on(connection_id, "send_raw", message=message, content_type=content_type)

    def publish(self, connection_id: str, topic: str) -> Reply:
        """From now on the WSM publishes every frame of the connection to ``topic``."""
        return self.call_on(connection_id, "publish", topic=topic)

    def stop_publish(self, connection_id: str) -> Reply:
        return self.call_on(connection_id, "stop_publish")

    def list(self) -> list[ConnectionInfo]:
        """The WSM's connection records, parsed leniently
        (:func:`~alpaca_cli.platform.records.parse_connection`)."""
        reply = self.call("list")
        raw = reply.data.get("connections")
        if raw is None:
            raw = reply.data.get("Connections", [])
        if isinstance(raw, str):  # some builds nest JSON as a string
            try:
                raw = orjson.loads(raw)
            except orjson.JSONDecodeError:
                raw = []
        if isinstance(raw, Mapping):
            raw = raw.get("connections", [])
        return [parse_connection(doc) for doc in raw or [] if isinstance(doc, Mapping)]

    def disconnect(self, connection_id: str, *, retry: bool = True) -> Reply:
        """Close one connection (sent once more on no reply, unless ``retry=False``: teardown
        falls back to the gateway's Disconnect instead, within its time budget), and ridden
        through a rolling update like every command on a connection."""
        return self.call_on(connection_id, "disconnect", retry=retry)

    def stop(self) -> Reply:
        """Close every connection of the WSM."""
        return self.call("stop")
