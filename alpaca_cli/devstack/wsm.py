"""WebSocketManager stand-in: owns real outbound WebSocket connections and publishes every frame.

Behaviour copied from the platform (``spec/virtufin-platform.md``, "WebSocketManager behaviour"):

* a connection record has ``id``, ``url``, ``status``, ``topic`` (empty when not publishing),
  ``instance_id``, ``tags`` and ``created_at``;
* every received frame is published to the record's topic in the **flat** format: the CloudEvent
  ``data`` is the payload, and the extensions ``websocketId``, ``websocketUrl``,
  ``timestamp`` and ``contentType`` carry the metadata. The envelope is made by the sidecar's
  rules (:func:`~alpaca_cli.devstack.cloudevents.event_from_attributes`), as the real WSM's
  publish goes through its daprd: ``time`` and trace attributes are added, and JSON frames are
  re-marshalled (keys sorted, compact), so consumers parse them rather than compare bytes;
* auto-reconnect tries 5 times, 1 s doubling, capped at 30 s, keeps id, URL and topic, and
  **never** resends anything: whatever handshake the client sent is gone with the old socket;
* lifecycle events go to ``websocketmanager.lifecycle``, named after one of the documented
  families (:data:`LIFECYCLE_FAMILIES`);
* Disconnect closes the socket and removes the record (newest spec), even with auto-reconnect.

Knobs for the newer platform ("Newer platform behaviour"), all off by default:

* ``record_ttl``: a record is dropped that many seconds after its creation or its last
  successful SendRaw, whichever is later (``CONNECTION_RECORD_TTL_SECONDS``; the stand-in does
  not enforce the platform's 30-3600 range, so tests can use 1 s). Nothing else refreshes it:
  not StartPublish, not tags, not a reconnect. The record then vanishes from ``List`` and every
  call on its id answers ``Connection not found``, while its socket goes on reading and
  publishing to its topic until the platform stops, as a real replica's socket does.
* ``policy.exhausted``: ``DISCONNECTED`` makes running out of reconnect attempts terminal (the
  newer platform); the default ``ERROR`` is the older behaviour.
* ``owned_elsewhere``: for that many seconds after a connection is created every call on its id
  fails with UNAVAILABLE ``Connection owned by different instance: <id>``, where ``<id>`` is
  the instance id of a (fictitious) peer replica, as during a rolling update. ``List`` still
  shows the record.
* ``replica_dies_after``: the replica that opened a connection dies that many seconds later:
  its socket drops without a close frame or an event, frames stop, and ``List`` goes on showing
  the stale record. The next call on the connection reclaims it, as the surviving replica
  does: the record moves to a new ``instance_id`` and turns ``DISCONNECTED`` (a
  ``disconnected`` event); with auto-reconnect a fresh socket is opened through the reconnect
  policy (same id, URL, topic, tags; nothing resent), so a reclaim can also run out of
  attempts. The call itself then sees the connection as it is at that moment (a SendRaw
  answers ``Websocket is not connected``). Each connection's first owner dies once; the
  survivor keeps it.
* ``frame_format``: ``flat`` (above), ``envelope`` (the older builds and this build's
  websocket-proxy spec: ``data`` is ``{WebSocketId, WebSocketUrl, Timestamp, Payload (base64),
  ContentType}`` with ContentType ``text/plain`` or ``application/octet-stream``, and no
  extensions) or ``bare`` (flat data published straight to Dapr: Dapr's default type
  ``com.dapr.event.sent``, source ``websocketmanager``, no extensions).
* ``connect_id_key``: the key of the id in a Connect result, ``id`` or one of the newer
  spellings ``connection_id`` / ``connectionId`` (clients must read all three).
* connection tags: ``SetTag``, ``SetTags``, ``GetTag``, ``GetTags`` and ``tags`` on Connect,
  with the worker limits (:func:`~alpaca_cli.devstack.schema.check_tags`); they survive
  reconnects and are never sent upstream.

The reader loop does nothing but publish, because an Alpaca feed batches 10,000+ messages a
second into frames and the broker's ``publish`` never blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from alpaca_cli.devstack.broker import Broker, CloudEvent
from alpaca_cli.devstack.cloudevents import event_from_attributes
from alpaca_cli.devstack.rpc import RpcError, Status
from alpaca_cli.devstack.schema import check_tags

__all__ = [
    "CONNECT_ID_KEYS",
    "FRAME_FORMATS",
    "LIFECYCLE_FAMILIES",
    "LIFECYCLE_TOPIC",
    "OWNED_ELSEWHERE",
    "ConnectIdKey",
    "ConnectionRecord",
    "ConnectionStatus",
    "FrameFormat",
    "LifecycleNames",
    "ReconnectPolicy",
    "WebSocketManager",
    "is_loopback_url",
    "timestamp",
]

logger = logging.getLogger(__name__)

LIFECYCLE_TOPIC = "websocketmanager.lifecycle"
LIFECYCLE_TYPE = "com.virtufin.websocketmanager.lifecycle."
FRAME_TYPE = "com.virtufin.websocketmanager.message"

CONNECTION_NOT_FOUND = "Connection not found"
NOT_CONNECTED = "Websocket is not connected"
TOPIC_REQUIRED = "Topic is required"
OWNED_ELSEWHERE = "Connection owned by different instance: "
"""Prefix of the rolling-update refusal; the owning instance's id follows."""

LifecycleNames = Literal["classic", "spec", "reference"]
"""The documented families of lifecycle event-type names (``--lifecycle-names``)."""
LIFECYCLE_FAMILIES: Final[tuple[LifecycleNames, ...]] = ("classic", "spec", "reference")

FrameFormat = Literal["flat", "envelope", "bare"]
"""How published frames look (``--frame-format``)."""
FRAME_FORMATS: Final[tuple[FrameFormat, ...]] = ("flat", "envelope", "bare")
BARE_FRAME_TYPE = "com.dapr.event.sent"
BARE_FRAME_SOURCE = "websocketmanager"

ConnectIdKey = Literal["id", "connection_id", "connectionId"]
"""The documented keys of the connection id in a Connect result (``--connect-id-key``)."""
CONNECT_ID_KEYS: Final[tuple[ConnectIdKey, ...]] = ("id", "connection_id", "connectionId")

_WSM_EVENT_NAMES: Final[dict[LifecycleNames, dict[str, str]]] = {
    # The WebSocketManager page: com.virtufin.websocketmanager.lifecycle.<suffix>.
    "classic": {k: k for k in ("connecting", "connected", "reconnecting", "disconnected", "error")},
    # The WSM spec names four, in causal order, and no "connecting": none is sent for it.
    "spec": {
        "connected": "connection.connected",
        "reconnecting": "connection.reconnecting",
        "disconnected": "connection.disconnected",
        "error": "connection.error",
    },
    # The C# Topics reference. Chosen where it is silent: "registered" when the record is made
    # (before "connecting"), "degraded" when an open socket drops and a reconnect will follow.
    "reference": {
        "registered": "registered",
        "connecting": "connecting",
        "connected": "connected",
        "degraded": "degraded",
        "reconnecting": "reconnecting",
        "disconnected": "closed",
        "error": "failed",
    },
}


def timestamp(moment: datetime | None = None) -> str:
    """RFC 3339 UTC with microseconds and ``Z``, as protobuf's JSON formatter writes times."""
    moment = moment or datetime.now(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class ConnectionStatus(StrEnum):
    """Connection states; the gateway shows them as enum names."""

    CONNECTING = "CONNECTING"
    CONNECTED = "CONNECTED"
    RECONNECTING = "RECONNECTING"
    DISCONNECTED = "DISCONNECTED"
    ERROR = "ERROR"


@dataclass(frozen=True, slots=True)
class ReconnectPolicy:
    """How a dropped connection is retried: ``attempts`` tries, ``base_delay`` doubling to ``cap``.

    The platform's values are the defaults; tests shrink ``base_delay``. ``exhausted`` is the
    status once every attempt failed: ``ERROR`` (older builds) or ``DISCONNECTED``, terminal, as
    the newer platform with configurable attempts does (a client must create a new connection).
    With ``attempts=0`` a dropped socket goes straight to ``exhausted``.
    """

    attempts: int = 5
    base_delay: float = 1.0
    cap: float = 30.0
    exhausted: ConnectionStatus = ConnectionStatus.ERROR

    def delays(self) -> Iterator[float]:
        """The wait before each attempt, in order."""
        for n in range(self.attempts):
            yield min(self.base_delay * (2**n), self.cap)


@dataclass(slots=True)
class ConnectionRecord:
    """What ``List`` reports about one connection."""

    id: str
    url: str
    instance_id: str
    auto_reconnect: bool
    tags: dict[str, str] = field(default_factory=dict)
    status: ConnectionStatus = ConnectionStatus.CONNECTING
    topic: str = ""
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def to_json(self) -> dict[str, Any]:
        """Protobuf-JSON form: lowerCamelCase keys, enum names, default values left out."""
        out: dict[str, Any] = {"id": self.id, "url": self.url, "status": self.status.value}
        if self.topic:
            out["topic"] = self.topic
        if self.instance_id:
            out["instanceId"] = self.instance_id
        if self.tags:
            out["tags"] = dict(self.tags)
        out["createdAt"] = timestamp(self.created_at)
        if self.auto_reconnect:
            out["autoReconnect"] = True
        return out


class _Connection:
    """A record plus the live socket and the task that reads it (and reconnects)."""

    __slots__ = (
        "born",
        "closing",
        "dead",
        "death",
        "received",
        "record",
        "refreshed",
        "seq",
        "task",
        "ws",
    )

    def __init__(self, record: ConnectionRecord, ws: ClientConnection, now: float) -> None:
        self.record = record
        self.ws: ClientConnection | None = ws
        self.task: asyncio.Task[None] | None = None
        self.closing = False
        self.seq = 0
        self.received = 0
        self.born = now
        """Clock reading at creation: the ``owned_elsewhere`` window starts here."""
        self.refreshed = now
        """Clock reading of the creation or the last successful SendRaw (the record TTL)."""
        self.dead = False
        """The owning replica died (``replica_dies_after``); the next call reclaims it."""
        self.death: asyncio.TimerHandle | None = None


def is_loopback_url(url: str) -> bool:
    """True when ``url`` names this machine (``localhost``, 127.0.0.0/8 or ``::1``)."""
    import ipaddress

    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_url(url: str) -> None:
    invalid = RpcError(Status.INVALID_ARGUMENT, f"Invalid WebSocket URL: {url!r} (ws:// or wss://)")
    try:
        parts = urlsplit(url)
        _ = parts.port  # urllib checks the port only when asked; ValueError when out of range
    except ValueError as exc:  # e.g. an unclosed IPv6 bracket: bad input, not a server fault
        raise invalid from exc
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise invalid


class WebSocketManager:
    """The connections of one WSM instance, publishing through ``broker``.

    **Parameters**

    * ``broker`` - where frames and lifecycle events go (same event loop).
    * ``pubsub`` - the pub/sub component name frames are published under.
    * ``policy`` - auto-reconnect attempts and delays.
    * ``open_timeout`` - seconds to wait for one WebSocket handshake.
    * ``record_ttl`` - seconds a record lives after its creation or last successful SendRaw
      (``None``: forever, as the mid-2026 builds).
    * ``owned_elsewhere`` - seconds after creation during which calls on a connection answer
      ``Connection owned by different instance: <id>`` (0: never).
    * ``lifecycle_names`` - which documented family of event types to emit.
    * ``connect_id_key`` - the key of the id in :meth:`connect_result`.
    * ``frame_format`` - ``flat``, ``envelope`` or ``bare`` published frames.
    * ``replica_dies_after`` - seconds after which a connection's first owner dies (``None``:
      never); the next call on it reclaims it.
    * ``clock`` - monotonic seconds (TTL and ownership windows); tests may pass their own.

    Errors are :class:`~alpaca_cli.devstack.rpc.RpcError` with the platform's messages.
    """

    def __init__(
        self,
        broker: Broker,
        *,
        pubsub: str = "pubsub",
        instance_id: str | None = None,
        policy: ReconnectPolicy | None = None,
        open_timeout: float = 10.0,
        record_ttl: float | None = None,
        owned_elsewhere: float = 0.0,
        lifecycle_names: LifecycleNames = "classic",
        connect_id_key: ConnectIdKey = "id",
        frame_format: FrameFormat = "flat",
        replica_dies_after: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._broker = broker
        self._pubsub = pubsub
        self.instance_id = instance_id or f"wsm-{secrets.token_hex(4)}"
        self.policy = policy or ReconnectPolicy()
        self._open_timeout = open_timeout
        self._connections: dict[str, _Connection] = {}
        self._orphans: list[_Connection] = []
        """Connections whose record expired: still reading and publishing, unreachable."""
        self._source = f"websocketmanager/{self.instance_id}"
        self.record_ttl = record_ttl
        self.owned_elsewhere = owned_elsewhere
        self.peer_instance_id = f"wsm-{secrets.token_hex(4)}"
        """The instance ``owned_elsewhere`` names as the owner."""
        self._names = _WSM_EVENT_NAMES[lifecycle_names]
        self.connect_id_key = connect_id_key
        self.frame_format = frame_format
        self.replica_dies_after = replica_dies_after
        self._clock = clock

    # -- API (the gateway's websocketmanager service and the controller call these) ----------

    async def connect(
        self, url: str, *, auto_reconnect: bool = False, tags: dict[str, str] | None = None
    ) -> ConnectionRecord:
        """Open ``url`` and return its record once connected.

        Raises:
            RpcError: INVALID_ARGUMENT for a URL that is not ws/wss or tags over the limits,
                UNAVAILABLE when the handshake fails (the record is not kept).
        """
        _check_url(url)
        tags = {k: v for k, v in (tags or {}).items() if v}
        check_tags(tags)
        record = ConnectionRecord(
            id=str(uuid.uuid4()),
            url=url,
            instance_id=self.instance_id,
            auto_reconnect=auto_reconnect,
            tags=tags,
        )
        self._lifecycle("registered", record)
        self._lifecycle("connecting", record)
        try:
            ws = await self._open(url)
        except Exception as exc:
            record.status = ConnectionStatus.ERROR
            self._lifecycle("error", record, error=exc)
            raise RpcError(
                Status.UNAVAILABLE, f"Failed to connect to {url}: {_describe(exc)}"
            ) from exc
        conn = _Connection(record, ws, self._clock())
        record.status = ConnectionStatus.CONNECTED
        self._connections[record.id] = conn
        self._lifecycle("connected", record)
        conn.task = asyncio.create_task(self._run(conn), name=f"wsm-{record.id}")
        if self.replica_dies_after is not None:
            loop = asyncio.get_running_loop()
            conn.death = loop.call_later(self.replica_dies_after, self._die, conn)
        return record

    def connect_result(self, record: ConnectionRecord) -> dict[str, Any]:
        """The Connect response: the id under ``connect_id_key``, and the status name."""
        return {self.connect_id_key: record.id, "status": record.status.value}

    def list(self) -> list[ConnectionRecord]:
        """Every connection this instance holds, oldest first (expired records left out)."""
        self._expire()
        return [c.record for c in self._connections.values()]

    def get(self, connection_id: str) -> ConnectionRecord:
        """The record of ``connection_id`` (diagnostics: no ownership check).

        Raises:
            RpcError: NOT_FOUND ``Connection not found``.
        """
        return self._find(connection_id).record

    def frames_received(self, connection_id: str) -> int:
        """Frames read from the connection so far, published or not (diagnostics, tests)."""
        return self._find(connection_id).received

    async def disconnect(self, connection_id: str) -> None:
        """Close the connection for good (no reconnect) and forget its record.

        Raises:
            RpcError: NOT_FOUND ``Connection not found``; UNAVAILABLE while owned elsewhere.
        """
        conn = self._call(connection_id)
        del self._connections[connection_id]
        await self._shut(conn)
        conn.record.status = ConnectionStatus.DISCONNECTED
        self._lifecycle("disconnected", conn.record)

    def start_publish(self, connection_id: str, topic: str) -> None:
        """Publish every frame received from now on to ``topic``.

        Raises:
            RpcError: NOT_FOUND, INVALID_ARGUMENT ``Topic is required``, FAILED_PRECONDITION
                ``Websocket is not connected``; UNAVAILABLE while owned elsewhere.
        """
        conn = self._call(connection_id)
        if not topic:
            raise RpcError(Status.INVALID_ARGUMENT, TOPIC_REQUIRED)
        if conn.record.status is not ConnectionStatus.CONNECTED:
            raise RpcError(Status.FAILED_PRECONDITION, NOT_CONNECTED)
        conn.record.topic = topic

    def stop_publish(self, connection_id: str) -> None:
        """Stop publishing; the connection stays open.

        Raises:
            RpcError: NOT_FOUND; UNAVAILABLE while owned elsewhere.
        """
        self._call(connection_id).record.topic = ""

    async def send_raw(self, connection_id: str, message: bytes, content_type: str) -> None:
        """Send one frame upstream: text for JSON/text content types, binary otherwise.

        Raises:
            RpcError: NOT_FOUND, FAILED_PRECONDITION ``Websocket is not connected``,
                INVALID_ARGUMENT for a text frame that is not UTF-8; UNAVAILABLE while owned
                elsewhere.

        A successful send refreshes the record's TTL; a failed one does not.
        """
        conn = self._call(connection_id)
        ws = conn.ws
        if ws is None or conn.record.status is not ConnectionStatus.CONNECTED:
            raise RpcError(Status.FAILED_PRECONDITION, NOT_CONNECTED)
        payload: str | bytes = message
        if _is_text(content_type):
            try:
                payload = message.decode()
            except UnicodeDecodeError as exc:
                raise RpcError(
                    Status.INVALID_ARGUMENT, f"Message is not UTF-8 text ({content_type})"
                ) from exc
        try:
            await ws.send(payload)
        except ConnectionClosed as exc:
            raise RpcError(Status.FAILED_PRECONDITION, NOT_CONNECTED) from exc
        conn.refreshed = self._clock()

    def set_tag(self, connection_id: str, key: str, value: str) -> None:
        """Set one tag; an empty ``value`` removes it.

        Raises:
            RpcError: NOT_FOUND; INVALID_ARGUMENT over the limits (nothing changes then);
                UNAVAILABLE while owned elsewhere.
        """
        record = self._call(connection_id).record
        tags = dict(record.tags)
        if value:
            tags[key] = value
        else:
            tags.pop(key, None)
        check_tags(tags)
        record.tags = tags

    def set_tags(self, connection_id: str, tags: dict[str, str]) -> None:
        """Replace every tag with ``tags``; entries with an empty value are left out.

        Raises:
            RpcError: NOT_FOUND; INVALID_ARGUMENT over the limits (nothing changes then);
                UNAVAILABLE while owned elsewhere.
        """
        record = self._call(connection_id).record
        clean = {k: v for k, v in tags.items() if v}
        check_tags(clean)
        record.tags = clean

    def get_tag(self, connection_id: str, key: str) -> str:
        """The value of tag ``key``, ``""`` when it is not set.

        Raises:
            RpcError: NOT_FOUND; UNAVAILABLE while owned elsewhere.
        """
        return self._call(connection_id).record.tags.get(key, "")

    def get_tags(self, connection_id: str) -> dict[str, str]:
        """A copy of every tag of the connection.

        Raises:
            RpcError: NOT_FOUND; UNAVAILABLE while owned elsewhere.
        """
        return dict(self._call(connection_id).record.tags)

    async def close(self) -> None:
        """Close every connection, expired ones included (platform shutdown)."""
        conns = [*self._connections.values(), *self._orphans]
        self._connections.clear()
        self._orphans.clear()
        for conn in conns:
            await self._shut(conn)
            conn.record.status = ConnectionStatus.DISCONNECTED

    # -- internals ---------------------------------------------------------------------------

    def _find(self, connection_id: str) -> _Connection:
        self._expire()
        conn = self._connections.get(connection_id)
        if conn is None:
            raise RpcError(Status.NOT_FOUND, CONNECTION_NOT_FOUND)
        return conn

    def _call(self, connection_id: str) -> _Connection:
        """:meth:`_find` for an RPC on the connection: refused while another instance owns it."""
        conn = self._find(connection_id)
        if self.owned_elsewhere > 0 and self._clock() - conn.born < self.owned_elsewhere:
            raise RpcError(Status.UNAVAILABLE, OWNED_ELSEWHERE + self.peer_instance_id)
        if conn.dead:
            self._reclaim(conn)
        return conn

    def _die(self, conn: _Connection) -> None:
        """The replica owning ``conn`` dies: the socket drops silently, the record goes stale."""
        conn.death = None
        if conn.closing:
            return
        conn.dead = True
        if conn.task is not None:
            conn.task.cancel()
        ws, conn.ws = conn.ws, None
        if ws is not None:
            ws.transport.abort()  # no close frame: a dead process sends none
        logger.info("wsm: the replica owning %s died; the next call reclaims it", conn.record.id)

    def _reclaim(self, conn: _Connection) -> None:
        """What the surviving replica does when a call touches a dead replica's connection."""
        conn.dead = False
        record = conn.record
        record.instance_id = f"wsm-{secrets.token_hex(4)}"
        record.status = ConnectionStatus.DISCONNECTED
        self._lifecycle("disconnected", record)
        if record.auto_reconnect and self.policy.attempts > 0:
            conn.task = asyncio.create_task(self._revive(conn), name=f"wsm-{record.id}-reclaim")

    async def _revive(self, conn: _Connection) -> None:
        if await self._reconnect(conn, None):
            await self._run(conn)

    def _expire(self) -> None:
        """Drop the records whose TTL ran out; their sockets go on (see the module docstring).

        Checked on every access rather than by a timer: no caller can tell the difference, and
        the stand-in stays free of background work.
        """
        ttl = self.record_ttl
        if ttl is None:
            return
        now = self._clock()
        for cid, conn in list(self._connections.items()):
            if now - conn.refreshed >= ttl:
                del self._connections[cid]
                self._orphans.append(conn)
                logger.info("wsm: record of %s expired (TTL %s s); its socket stays open", cid, ttl)

    async def _open(self, url: str) -> ClientConnection:
        # proxy=None: a loopback feed must never be routed through a proxy from the environment.
        # No permessage-deflate on loopback: compressing and inflating every frame is pure CPU
        # cost when no network is crossed (the local feed and the WSM share two cores). A
        # remote Alpaca still gets the default offer, where it saves bandwidth.
        return await connect(
            url,
            open_timeout=self._open_timeout,
            max_size=None,
            proxy=None,
            close_timeout=2,
            compression=None if is_loopback_url(url) else "deflate",
        )

    async def _shut(self, conn: _Connection) -> None:
        conn.closing = True
        if conn.death is not None:
            conn.death.cancel()
        task = conn.task
        ws = conn.ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await ws.close()
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def _run(self, conn: _Connection) -> None:
        """Read until the socket closes; then reconnect (if asked) or settle the status."""
        record = conn.record
        while True:
            ws = conn.ws
            assert ws is not None
            error: BaseException | None = None
            try:
                await self._read(conn, ws)
            except ConnectionClosed as exc:
                error = exc
            except Exception as exc:  # a reader must never die silently
                logger.exception("wsm: reader of %s failed", record.id)
                error = exc
            conn.ws = None
            if conn.closing:
                return
            if not record.auto_reconnect:
                record.status = ConnectionStatus.DISCONNECTED
                self._lifecycle("disconnected", record, error=error)
                return
            if self.policy.attempts > 0:
                record.status = ConnectionStatus.RECONNECTING
                self._lifecycle("degraded", record, error=error)
            if not await self._reconnect(conn, error):
                return

    async def _read(self, conn: _Connection, ws: ClientConnection) -> None:
        if self.frame_format != "flat":
            return await self._read_drifted(conn, ws)
        record = conn.record
        publish = self._broker.publish
        pubsub = self._pubsub
        source = self._source
        cid = record.id
        url = record.url
        while True:
            frame = await ws.recv()
            conn.received += 1
            topic = record.topic
            if not topic:
                continue
            if isinstance(frame, str):
                data = frame.encode()
                ctype = "application/json"
            else:
                data = frame
                ctype = "application/octet-stream"
            conn.seq += 1
            # Through the sidecar's envelope rules, like any publish: the frame gets ``time``
            # and the trace attributes, and JSON data is re-marshalled as daprd does it.
            publish(
                topic,
                event_from_attributes(
                    pubsub=pubsub,
                    topic=topic,
                    attributes={
                        "id": f"{cid}-{conn.seq}",
                        "source": source,
                        "type": FRAME_TYPE,
                        "specversion": "1.0",
                        "datacontenttype": ctype,
                        "websocketId": cid,
                        "websocketUrl": url,
                        "timestamp": timestamp(),
                        "contentType": ctype,
                    },
                    data=data,
                ),
            )
            # Let the sidecar's stream writers run: recv() returns buffered frames without
            # yielding, so under load this loop published several frames per loop turn while a
            # writer sent one, and the backlog grew until delivery fell to a tenth of the input
            # (measured: 35k msg/s delivered of 320k offered; with the yield, 134k).
            await asyncio.sleep(0)

    async def _read_drifted(self, conn: _Connection, ws: ClientConnection) -> None:
        """:meth:`_read` for the ``envelope`` and ``bare`` formats (kept apart: the flat loop
        is the hot path and stays branch-free)."""
        import base64

        record = conn.record
        envelope = self.frame_format == "envelope"
        while True:
            frame = await ws.recv()
            conn.received += 1
            topic = record.topic
            if not topic:
                continue
            raw = frame.encode() if isinstance(frame, str) else frame
            conn.seq += 1
            if envelope:
                wrapped = {
                    "WebSocketId": record.id,
                    "WebSocketUrl": record.url,
                    "Timestamp": timestamp(),
                    "Payload": base64.b64encode(raw).decode(),
                    "ContentType": (
                        "text/plain" if isinstance(frame, str) else "application/octet-stream"
                    ),
                }
                event = CloudEvent(
                    id=f"{record.id}-{conn.seq}",
                    source=self._source,
                    type=FRAME_TYPE,
                    topic=topic,
                    pubsubname=self._pubsub,
                    data=orjson.dumps(wrapped),
                )
            else:
                event = CloudEvent(
                    id=str(uuid.uuid4()),
                    source=BARE_FRAME_SOURCE,
                    type=BARE_FRAME_TYPE,
                    topic=topic,
                    pubsubname=self._pubsub,
                    datacontenttype=(
                        "application/json" if isinstance(frame, str) else "application/octet-stream"
                    ),
                    data=raw,
                )
            self._broker.publish(topic, event)
            await asyncio.sleep(0)  # as in _read: the stream writers get their turn

    async def _reconnect(self, conn: _Connection, dropped: BaseException | None) -> bool:
        """Try the policy's attempts; True once connected again (same id, URL, topic, tags).

        When they run out the record settles on ``policy.exhausted``: ``ERROR`` with an
        ``error`` event, or ``DISCONNECTED`` (terminal) with a ``disconnected`` event carrying
        the last failure.
        """
        record = conn.record
        last: BaseException | None = dropped
        for attempt, delay in enumerate(self.policy.delays(), start=1):
            record.status = ConnectionStatus.RECONNECTING
            self._lifecycle("reconnecting", record, attempt=attempt)
            await asyncio.sleep(delay)
            if conn.closing:
                return False
            try:
                ws = await self._open(record.url)
            except Exception as exc:
                last = exc
                continue
            if conn.closing:
                with contextlib.suppress(Exception):
                    await ws.close()
                return False
            conn.ws = ws
            record.status = ConnectionStatus.CONNECTED
            self._lifecycle("connected", record, attempt=attempt)
            return True
        record.status = self.policy.exhausted
        if record.status is ConnectionStatus.DISCONNECTED:
            self._lifecycle("disconnected", record, error=last)
        else:
            self._lifecycle("error", record, error=last)
        return False

    def _lifecycle(
        self,
        kind: str,
        record: ConnectionRecord,
        *,
        attempt: int | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Publish one lifecycle event, under this family's name for ``kind`` (if it has one).

        ``kind`` is the internal (classic) name, plus ``registered`` and ``degraded``, which
        only the reference family sends. The data is the same in every family.
        """
        suffix = self._names.get(kind)
        if suffix is None:
            return
        data: dict[str, Any] = {
            "connection_id": record.id,
            "url": record.url,
            "instance_id": record.instance_id,
        }
        if attempt is not None:
            data["attempt"] = attempt
        if error is not None:
            data["error_type"] = type(error).__name__
            data["error_message"] = _describe(error)
        logger.info("wsm: %s %s %s", kind, record.id, record.url)
        self._broker.publish(
            LIFECYCLE_TOPIC,
            CloudEvent(
                id=str(uuid.uuid4()),
                source=self._source,
                type=LIFECYCLE_TYPE + suffix,
                topic=LIFECYCLE_TOPIC,
                pubsubname=self._pubsub,
                data=orjson.dumps(data),
                extensions={"time": timestamp()},
            ),
        )


def _is_text(content_type: str) -> bool:
    ctype = content_type.split(";", 1)[0].strip().lower()
    return ctype.startswith("text/") or ctype == "application/json" or ctype.endswith("+json")


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return text if text else type(exc).__name__
